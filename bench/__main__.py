"""`python -m bench [--quick | --smoke]`: run the scenarios and write bench/results/latest.*."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import systems
from bench.context import BIG, MANY, PULL, SLOW, Bench
from bench.images import Image, ImageSpec, build_images, publish_static, push
from bench.memory import MemoryMonitor
from bench.profiles import PROFILES, SCENARIOS, Profile
from bench.report import write_reports
from bench.results import Scenario
from bench.scenarios import RUNNERS
from bench.upstream import REGISTRY, Upstream

HERE = Path(__file__).resolve().parent
REQUIRED = {"docker-registry": REGISTRY, "skopeo": "skopeo", "curl": "curl", "wrk": "wrk"}
SYSTEM_BINARIES = {
    systems.NGINX_SYS: systems.NGINX,
    systems.SQUID_SYS: systems.SQUID,
    systems.SQUID_CF: systems.SQUID,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller blobs, fewer runs (< 3 min)")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes, one run, few systems")
    parser.add_argument("--scenarios", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--systems", help=f"comma-separated subset of {','.join(systems.ALL)}")
    parser.add_argument("--runs", type=int, help="runs per scenario (overrides the mode's)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="report directory")
    parser.add_argument("--workdir", type=Path, help="parent of the temporary directory")
    parser.add_argument(
        "--image-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "regcache-bench-images",
        help="where generated image layouts are kept between runs",
    )
    parser.add_argument("--no-chart", action="store_true", help="skip latest.png")
    parser.add_argument(
        "--no-netns", action="store_true", help="S4 on a rate-limiting loopback relay instead"
    )
    parser.add_argument(
        "--regcache-src",
        type=Path,
        help="benchmark the regcache package in this directory (e.g. an exported src/)",
    )
    return parser.parse_args(argv)


def choose_profile(args: argparse.Namespace) -> Profile:
    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else "default"]
    if args.scenarios:
        wanted = tuple(s.strip().upper() for s in args.scenarios.split(","))
        unknown = set(wanted) - set(SCENARIOS)
        if unknown:
            raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        profile = dataclasses.replace(profile, scenarios=wanted)
    if args.systems:
        chosen = tuple(s.strip() for s in args.systems.split(","))
        unknown = set(chosen) - set(systems.ALL)
        if unknown:
            raise SystemExit(f"unknown system(s): {', '.join(sorted(unknown))}")
        profile = dataclasses.replace(profile, systems=chosen)
    if args.no_netns:
        profile = dataclasses.replace(profile, netns=False)
    if args.runs:
        profile = dataclasses.replace(profile, runs=dict.fromkeys(profile.runs, args.runs))
    return profile


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (done.stdout or done.stderr).decode(errors="replace").strip()
    return text.splitlines()[0] if text else "?"


def versions(regcache_src: Path | None) -> dict[str, str]:
    root = HERE.parent
    rev = _first_line(["git", "-C", str(root), "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", str(root), "status", "--porcelain", "src"])
    if regcache_src is not None:
        regcache = f"from {regcache_src}"
    else:
        regcache = rev + (" + uncommitted changes in src/" if dirty not in ("", "?") else "")
    return {
        "regcache": regcache,
        "python": platform.python_version(),
        "distribution": _first_line([REGISTRY, "--version"]).split(" ")[-1],
        "squid": _first_line([systems.SQUID, "-v"]).removeprefix("Squid Cache: Version "),
        "nginx": _first_line([systems.NGINX, "-v"]).removeprefix("nginx version: nginx/"),
        "skopeo": _first_line(["skopeo", "--version"]).removeprefix("skopeo version "),
        "curl": _first_line(["curl", "--version"]).split(" ")[1],
    }


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def machine() -> str:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return f"{os.cpu_count()} cores, {pages / 1024**3:.0f} GiB RAM, Linux {platform.release()}"


def image_specs(profile: Profile) -> list[ImageSpec]:
    wanted = set(profile.scenarios)
    specs = []
    if wanted & {"S1", "S7"}:
        specs.append(ImageSpec(BIG, (profile.big_layer,)))
    if wanted & {"S2", "S5"}:
        specs.append(ImageSpec(PULL, profile.pull_layers))
    if "S3" in wanted:
        specs.append(ImageSpec(MANY, profile.many_layers))
    if "S4" in wanted:
        specs.append(ImageSpec(SLOW, profile.slow_layers))
    return specs


def check_tools(profile: Profile) -> tuple[Profile, list[str]]:
    missing = [name for name, binary in REQUIRED.items() if shutil.which(binary) is None]
    if missing:
        raise SystemExit(f"python -m bench needs {', '.join(missing)}")
    notes = []
    kept = []
    for name in profile.systems:
        binary = SYSTEM_BINARIES.get(name)
        if binary is not None and shutil.which(binary) is None:
            notes.append(f"{name} left out: {binary} is not installed")
        elif name in (systems.SQUID_SYS, systems.SQUID_CF) and os.geteuid() != 0:
            notes.append(f"{name} left out: squid is run as root (it then drops to 'proxy')")
        else:
            kept.append(name)
    return dataclasses.replace(profile, systems=tuple(kept)), notes


def run(profile: Profile, args: argparse.Namespace) -> tuple[list[Scenario], dict[str, Any]]:
    started_at = time.monotonic()
    profile, notes = check_tools(profile)
    meta: dict[str, Any] = {
        "mode": profile.mode,
        "started": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_before": _load(),
        "versions": versions(args.regcache_src),
        "profile": dataclasses.asdict(profile),
        "notes": notes,
    }
    parent = args.workdir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="regcache-bench-", dir=parent))
    workdir.chmod(0o755)  # squid runs as 'proxy' and must reach its cache dir inside
    scenarios: list[Scenario] = []
    memory = MemoryMonitor()
    upstream = Upstream(workdir / "upstream")
    try:
        log(started_at, f"images ({args.image_cache})")
        images = build_images(image_specs(profile), args.image_cache)
        upstream.start()
        static_root = workdir / "static"
        for image in images.values():
            if image.name != SLOW:
                push(image, upstream.address)
            publish_static(image, static_root)
        log(started_at, f"upstream {upstream.url} ready with {len(images)} images")
        memory.start()
        bench = Bench(
            profile, workdir, upstream, images, static_root, memory, started_at, args.regcache_src
        )
        for key in SCENARIOS:
            if key in profile.scenarios:
                scenarios.append(run_one(bench, key))
    finally:
        memory.stop()
        upstream.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    meta["minutes"] = (time.monotonic() - started_at) / 60
    meta["load_after"] = _load()
    meta["images"] = {name: _image_meta(image) for name, image in images.items()}
    return scenarios, meta


def _image_meta(image: Image) -> dict[str, Any]:
    return {
        "manifest_digest": image.manifest_digest,
        "size": image.size,
        "layers": [blob.size for blob in image.layers],
    }


def run_one(bench: Bench, key: str) -> Scenario:
    bench.log(f"{key} starts")
    began = time.monotonic()
    try:
        scenario = RUNNERS[key](bench)
    except Exception as exc:  # one broken scenario must not lose the others' results
        scenario = Scenario(key, "(failed)", error=f"{type(exc).__name__}: {exc}"[:2000])
    scenario.seconds = time.monotonic() - began
    bench.log(f"{key} done in {scenario.seconds:.0f} s")
    return scenario


def log(started_at: float, message: str) -> None:
    print(f"[bench {time.monotonic() - started_at:6.0f}s] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    profile = choose_profile(args)
    scenarios, meta = run(profile, args)
    paths = write_reports(args.out, meta, scenarios, chart=not args.no_chart)
    for path in paths:
        print(path)
    return 1 if any(scenario.error for scenario in scenarios) else 0


if __name__ == "__main__":
    raise SystemExit(main())
