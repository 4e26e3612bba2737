"""S2 (one cold pull by skopeo) and S3 (N concurrent cold pulls of one image)."""

from __future__ import annotations

from bench.clients import pull_many
from bench.common import (
    FAILURES,
    short_error,
    size_text,
)
from bench.context import MANY, PULL, Bench
from bench.images import Image
from bench.results import Scenario, Table
from bench.systems import CACHES, DIRECT, REGCACHE
from bench.targets import exactly_once, ratio_target


def _cold_pulls(
    bench: Bench,
    scenario: Scenario,
    image: Image,
    clients: int,
    runs: int,
    label: str,
) -> tuple[Table, Table]:
    times = scenario.table(f"{label}: wall time", "s", higher_is_better=False, references=[DIRECT])
    traffic = scenario.table(
        f"{label}: upstream blob bytes / image size",
        "x image size",
        higher_is_better=False,
        references=[],
    )
    for run in range(runs):
        bench.log(f"{scenario.key} {label} run {run + 1}")
        for name in bench.systems(DIRECT, *CACHES):
            dests = [bench.workdir / f"pull-{name}-{i}" for i in range(clients)]
            try:
                with bench.serving(name, monitor=True) as running:
                    mark = bench.upstream.mark()
                    wall = pull_many(running.host, image.name, image.tag, dests)
                    sent = bench.upstream.traffic_since(mark)
                times.add(name, wall)
                traffic.add(name, sent.blob_bytes / image.size)
            except FAILURES as exc:
                times.fail(name, short_error(exc))
                traffic.fail(name, short_error(exc))
    return times, traffic


def s2_cold_pull(bench: Bench) -> Scenario:
    image = bench.images[PULL]
    scenario = Scenario(
        "S2", f"Cold pull by skopeo ({size_text(image.size)} image, {len(image.layers)} layers)"
    )
    scenario.notes.append(
        "`skopeo copy docker://... dir:...` through a fresh cache each run; upstream bytes are "
        "the blob GET bytes in the upstream's access log over config + layer sizes."
    )
    times, traffic = _cold_pulls(bench, scenario, image, 1, bench.runs("S2"), "1 pull")
    scenario.targets.append(
        ratio_target(
            "S2",
            "cold pull time <= 1.1x direct",
            [times.ratio(REGCACHE, DIRECT)],
            lambda r: r <= 1.1,
        )
    )
    scenario.targets.append(exactly_once("S2", "upstream bytes exactly 1.0x", traffic))
    return scenario


def s3_concurrent_pulls(bench: Bench) -> Scenario:
    image = bench.images[MANY]
    scenario = Scenario("S3", f"Concurrent cold pulls of one image ({size_text(image.size)})")
    scenario.notes.append(
        "N skopeo pulls of the same image started together against a fresh cache; time until "
        "the last finished. The image is smaller than S2's: 16 skopeo processes writing and "
        "hashing 16 copies on 2 cores would measure skopeo, and take minutes per system."
    )
    byte_tables = []
    for clients in bench.profile.s3_clients:
        _, traffic = _cold_pulls(bench, scenario, image, clients, bench.runs("S3"), f"N={clients}")
        byte_tables.append(traffic)
    scenario.targets.append(
        exactly_once("S3", "upstream bytes exactly 1.0x at every N", *byte_tables)
    )
    return scenario
