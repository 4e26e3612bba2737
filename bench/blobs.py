"""S1 (warm blob throughput) and S7 (time to first byte of a cold blob)."""

from __future__ import annotations

from contextlib import ExitStack

from bench.clients import ClientError, fetch, fetch_many
from bench.common import (
    BLOB_TIMEOUT,
    FAILURES,
    NO_COLLAPSING,
    SINGLE_CLIENT_CACHES,
    blob_path,
    short_error,
    size_text,
)
from bench.context import BIG, Bench
from bench.results import Scenario, Target
from bench.systems import CACHES, DIRECT, NGINX_SYS, REGCACHE
from bench.targets import ratio_target


def warm_blob(bench: Bench, url: str, size: int, attempts: int = 4) -> str | None:
    """GET through a cache until a GET costs the upstream nothing; a note if that never happens."""
    for attempt in range(attempts):
        mark = bench.upstream.mark()
        got = fetch(url, timeout=BLOB_TIMEOUT)
        if got.status != 200 or got.size != size:
            raise ClientError(f"warm-up GET {url}: status {got.status}, {got.size} bytes")
        if bench.upstream.traffic_since(mark).blob_gets == 0 and attempt > 0:
            return None
    return f"still fetched from upstream after {attempts} GETs"


def s1_warm_throughput(bench: Bench) -> Scenario:
    image = bench.images[BIG]
    blob = image.largest
    scenario = Scenario("S1", f"Warm blob throughput ({size_text(blob.size)} blob)")
    tables = {
        clients: scenario.table(
            f"{clients} client{'s' if clients > 1 else ''}: aggregate throughput",
            "GB/s",
            higher_is_better=True,
            references=[NGINX_SYS],
        )
        for clients in bench.profile.s1_clients
    }
    scenario.notes.append(
        "curl to /dev/null; aggregate = clients x blob size / wall time of the slowest client. "
        "Caches are warmed first (GET until a GET sends nothing to the upstream)."
    )
    scenario.notes.append(NO_COLLAPSING)
    with ExitStack() as stack:
        urls: dict[str, str] = {}
        for name in bench.systems(NGINX_SYS, DIRECT, *SINGLE_CLIENT_CACHES):
            try:
                running = stack.enter_context(bench.serving(name, monitor=True))
                url = running.url + blob_path(image)
                note = warm_blob(bench, url, blob.size) if name in CACHES else None
                if name not in CACHES:
                    fetch(url, timeout=BLOB_TIMEOUT)  # page cache
                if note:
                    scenario.notes.append(f"{name}: {note}")
                urls[name] = url
            except FAILURES as exc:
                for table in tables.values():
                    table.fail(name, short_error(exc))
        for run in range(bench.runs("S1")):
            bench.log(f"S1 run {run + 1}")
            for name, url in urls.items():
                for clients, table in tables.items():
                    try:
                        wall = fetch_many(url, clients, blob.size, timeout=BLOB_TIMEOUT)
                        table.add(name, clients * blob.size / wall / 1e9)
                    except FAILURES as exc:
                        table.fail(name, short_error(exc))
    ratios = [table.ratio(REGCACHE, NGINX_SYS) for table in tables.values()]
    scenario.targets.append(
        ratio_target(
            "S1",
            "warm blob throughput >= 0.9x nginx (every client count)",
            ratios,
            lambda r: r >= 0.9,
        )
    )
    return scenario


def s7_cold_ttfb(bench: Bench) -> Scenario:
    image = bench.images[BIG]
    blob = image.largest
    scenario = Scenario("S7", f"Time to first byte of a cold {size_text(blob.size)} blob")
    ttfb = scenario.table("time to first byte", "ms", higher_is_better=False, references=[DIRECT])
    speed = scenario.table(
        "cold transfer: throughput of the whole GET",
        "GB/s",
        higher_is_better=True,
        references=[DIRECT],
    )
    scenario.notes.append(
        "curl's time_starttransfer through a fresh cache each run; direct = the upstream's own."
    )
    scenario.notes.append(NO_COLLAPSING)
    for run in range(bench.runs("S7")):
        bench.log(f"S7 run {run + 1}")
        for name in bench.systems(DIRECT, *SINGLE_CLIENT_CACHES):
            try:
                with bench.serving(name) as running:
                    bench.upstream.mark()  # waits until the upstream is idle
                    got = fetch(running.url + blob_path(image), timeout=BLOB_TIMEOUT)
                if got.status != 200 or got.size != blob.size:
                    raise ClientError(f"status {got.status}, {got.size} bytes")
                ttfb.add(name, got.ttfb * 1000)
                speed.add(name, got.size / got.seconds / 1e9)
            except FAILURES as exc:
                ttfb.fail(name, short_error(exc))
                speed.fail(name, short_error(exc))
    mine, theirs = ttfb.median(REGCACHE), ttfb.median(DIRECT)
    if mine is None or theirs is None:
        scenario.targets.append(Target("S7", "TTFB within 50 ms of the upstream's"))
    else:
        scenario.targets.append(
            Target(
                "S7",
                "TTFB within 50 ms of the upstream's",
                f"{mine - theirs:+.1f} ms ({mine:.1f} vs {theirs:.1f} ms)",
                mine - theirs <= 50,
            )
        )
    return scenario
