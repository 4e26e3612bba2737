"""bench/results/latest.md and latest.json from the scenarios' results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.results import Scenario, Table
from bench.systems import LABELS


def number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def ratio_text(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}x" if value >= 100 else f"{value:.3g}x"


def render_table(table: Table) -> list[str]:
    direction = "higher is better" if table.higher_is_better else "lower is better"
    lines = [f"**{table.title}** ({table.unit}, {direction})", ""]
    ratios = [f"ratio to {ref}" for ref in table.references]
    header = ["system", "median", "min\N{EN DASH}max", "runs", *ratios]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for system, values in table.rows.items():
        cells = [
            LABELS.get(system, system),
            number(table.median(system) or 0.0),
            f"{number(min(values))}\N{EN DASH}{number(max(values))}",
            str(len(values)),
            *(ratio_text(table.ratio(system, ref)) for ref in table.references),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for system, reason in table.failures.items():
        padding = " |" * (len(header) - 3)
        lines.append(f"| {LABELS.get(system, system)} | failed | {reason} |{padding}")
    lines.append("")
    lines.extend(f"_{note}_" for note in table.notes)
    return lines


def render_markdown(meta: dict[str, Any], scenarios: list[Scenario]) -> str:
    lines = [
        f"# regcache benchmark ({meta['mode']} mode)",
        "",
        f"{meta['started']} on {meta['machine']}; took {meta['minutes']:.1f} min.",
        "",
        f"Load average (1, 5, 15 min) before: {meta['load_before']}, after: "
        f"{meta['load_after']}. Load before the run is other work (or an earlier "
        "run) on the same two cores.",
        "",
        "Versions: " + ", ".join(f"{key} {value}" for key, value in meta["versions"].items()),
        "",
        "Each row: the median of the runs, their min-max, and the ratio of the median to the "
        "reference's median (for times, a ratio above 1 is slower).",
        "",
        *(f"- {note}" for note in meta.get("notes", [])),
        "",
        "## Targets for regcache",
        "",
        "| scenario | target | measured | verdict |",
        "|---|---|---|---|",
    ]
    for scenario in scenarios:
        for target in scenario.targets:
            verdict = {True: "met", False: "**not met**", None: "not measured"}[target.met]
            lines.append(f"| {target.scenario} | {target.goal} | {target.measured} | {verdict} |")
    lines.append("")
    for scenario in scenarios:
        lines += ["", f"## {scenario.key}. {scenario.title}", ""]
        if scenario.error:
            lines += [f"**The scenario failed:** `{scenario.error}`", ""]
        lines += [f"- {note}" for note in scenario.notes]
        lines += [f"- took {scenario.seconds:.0f} s", ""]
        for table in scenario.tables:
            lines += render_table(table)
    return "\n".join(lines).rstrip() + "\n"


def write_reports(
    out_dir: Path, meta: dict[str, Any], scenarios: list[Scenario], *, chart: bool = True
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    chart_note = ""
    if chart:
        try:
            from bench.chart import draw
        except ImportError as exc:  # matplotlib is a bench-only dependency
            chart_note = f"no chart: {exc} (pip install matplotlib)"
        else:
            png = out_dir / "latest.png"
            draw(scenarios, png, title=f"regcache benchmark ({meta['mode']}), {meta['started']}")
            written.append(png)
    if chart_note:
        meta = {**meta, "chart": chart_note}
    md = out_dir / "latest.md"
    text = render_markdown(meta, scenarios)
    if chart_note:
        text += f"\n_{chart_note}_\n"
    elif chart:
        text += "\n![ratios](latest.png)\n"
    md.write_text(text)
    data = {**meta, "scenarios": [scenario.to_json() for scenario in scenarios]}
    js = out_dir / "latest.json"
    js.write_text(json.dumps(data, indent=2) + "\n")
    return [md, js, *written]
