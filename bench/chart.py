"""latest.png: one panel per table, each system's median as a ratio to the table's reference."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.results import Scenario

COLORS = {
    "regcache": "#d62728",
    "nginx": "#7f7f7f",
    "direct": "#1f77b4",
    "distribution": "#2ca02c",
    "squid": "#ff7f0e",
    "squid-cf": "#e8a33d",
}


def draw(scenarios: list[Scenario], path: Path, *, title: str) -> None:
    panels = [
        (scenario, table) for scenario in scenarios for table in scenario.tables if table.rows
    ]
    if not panels:
        fig = plt.figure(figsize=(6, 2))
        fig.text(0.5, 0.5, "no results", ha="center")
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return
    columns = 3
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 2.6 * rows), squeeze=False)
    for ax, (scenario, table) in zip(axes.flat, panels, strict=False):
        names = list(table.rows)
        better = "higher" if table.higher_is_better else "lower"
        if table.references:
            reference = table.references[0]
            values = [table.ratio(name, reference) or 0.0 for name in names]
            ax.axvline(1.0, color="black", linewidth=0.8)
            label = f"median / {reference} ({table.unit}; {better} is better)"
        else:
            values = [table.median(name) or 0.0 for name in names]
            label = f"median, {table.unit} ({better} is better)"
        ax.barh(names, values, color=[COLORS.get(name, "#9467bd") for name in names])
        if min(values) > 0 and max(values) > 20 * min(values):
            ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_title(f"{scenario.key}: {table.title}", fontsize=9)
        ax.set_xlabel(label, fontsize=8)
        ax.tick_params(labelsize=8)
        for y, value in enumerate(values):
            ax.text(value, y, f" {value:.3g}", va="center", fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=90)
    plt.close(fig)
