"""The scenarios by key, and S6, which only reads what S1-S3 measured."""

from __future__ import annotations

from collections.abc import Callable

from bench.blobs import s1_warm_throughput, s7_cold_ttfb
from bench.context import Bench
from bench.manifests import s5_manifest_hits
from bench.pulls import s2_cold_pull, s3_concurrent_pulls
from bench.results import Scenario, Target
from bench.slowlink import s4_slow_link
from bench.systems import CACHES, DISTRIBUTION, NGINX_SYS, REGCACHE


def s6_memory(bench: Bench) -> Scenario:
    scenario = Scenario("S6", "Memory: peak RSS of each cache process during S1-S3")
    table = scenario.table(
        "peak RSS per instance (VmHWM, or sampled RSS of its process group if higher)",
        "MiB",
        higher_is_better=False,
        references=[DISTRIBUTION],
    )
    for name in bench.systems(*CACHES, NGINX_SYS):
        for value in bench.memory.peaks.get(name, []):
            table.add(name, value)
    scenario.notes.append(
        "One value per instance started in S1-S3 (each cold run has its own instance); "
        "the target is judged on the largest."
    )
    peaks = table.rows.get(REGCACHE)
    scenario.targets.append(
        Target("S6", "peak RSS < 150 MiB")
        if not peaks
        else Target("S6", "peak RSS < 150 MiB", f"{max(peaks):.1f} MiB", max(peaks) < 150)
    )
    return scenario


RUNNERS: dict[str, Callable[[Bench], Scenario]] = {
    "S1": s1_warm_throughput,
    "S2": s2_cold_pull,
    "S3": s3_concurrent_pulls,
    "S4": s4_slow_link,
    "S5": s5_manifest_hits,
    "S6": s6_memory,
    "S7": s7_cold_ttfb,
}
