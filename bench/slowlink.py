"""S4: cold and warm pulls over a slow link (100 Mbit/s and 20 ms of round trip)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.clients import pull_many
from bench.common import (
    FAILURES,
    NO_COLLAPSING,
    SINGLE_CLIENT_CACHES,
    short_error,
    size_text,
)
from bench.context import SLOW, Bench
from bench.images import Image, push
from bench.netns import slow_link
from bench.procs import ProcessError, Service
from bench.results import Scenario
from bench.systems import DIRECT, REGCACHE
from bench.targets import ratio_target
from bench.upstream import Upstream

_RELAY_READY = re.compile(r"relay listening on (127\.0\.0\.1:\d+)")


@contextmanager
def _relay(bench: Bench, argv: list[str]) -> Iterator[str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    service = Service(
        f"relay-{len(list(bench.workdir.glob('relay-*')))}",
        [sys.executable, "-m", "bench.relay", *argv],
        bench.workdir,
        env=env,
    )
    found: list[str] = []

    def ready() -> bool:
        match = _RELAY_READY.search(service.stderr_path.read_text(errors="replace"))
        if match:
            found.append(match[1])
        return bool(match)

    with service:
        service.wait_ready(ready, what="listening")
        yield found[0]


def s4_slow_link(bench: Bench) -> Scenario:
    image = bench.images[SLOW]
    profile = bench.profile
    scenario = Scenario(
        "S4",
        f"Slow link: {profile.link_rate} + {profile.link_delay_ms:g} ms "
        f"({size_text(image.size)} image)",
    )
    delay = ["--delay-ms", f"{profile.link_delay_ms:g}"]
    with ExitStack() as stack:
        try:
            if not profile.netns:
                raise ProcessError("turned off with --no-netns")
            with ExitStack() as attempt:
                upstream, relay_argv, note = _namespaced_upstream(bench, image, attempt, delay)
                stack.enter_context(attempt.pop_all())
        except (ProcessError, OSError) as exc:
            upstream = bench.upstream
            push(image, upstream.address)
            rate = float(profile.link_rate.removesuffix("mbit"))
            relay_argv = ["--connect", upstream.address, "--rate-mbit", f"{rate:g}", *delay]
            note = (
                "FALLBACK: network namespaces were not used "
                f"({short_error(exc)}); the link is a relay on loopback with a token bucket at "
                f"{rate:g} Mbit/s per direction and {profile.link_delay_ms:g} ms of round trip."
            )
        scenario.notes.append(note)
        relay = stack.enter_context(_relay(bench, relay_argv))
        _s4_runs(bench, scenario, image, upstream, relay)
    return scenario


def _namespaced_upstream(
    bench: Bench, image: Image, stack: ExitStack, delay: list[str]
) -> tuple[Upstream, list[str], str]:
    """The upstream in its own namespace behind the shaped veth pair, with the image pushed."""
    link = stack.enter_context(slow_link(rate=bench.profile.link_rate))
    upstream = Upstream(
        bench.workdir / "upstream-slow", host=link.upstream_ip, netns=link.upstream_ns
    )
    upstream.start()
    stack.callback(upstream.stop)
    push(image, upstream.address, netns=link.upstream_ns)
    argv = ["--connect", upstream.address, "--netns", link.client_ns, *delay]
    note = (
        f"Upstream registry in a network namespace behind a {link.describe()}; a relay on "
        f"127.0.0.1 adds {bench.profile.link_delay_ms:g} ms of round trip (half each way) and "
        "connects from the other namespace."
    )
    return upstream, argv, note


def _s4_runs(
    bench: Bench, scenario: Scenario, image: Image, upstream: Upstream, relay: str
) -> None:
    cold = scenario.table("cold pull time", "s", higher_is_better=False, references=[DIRECT])
    warm = scenario.table(
        "warm pull time (second pull, same cache)",
        "s",
        higher_is_better=False,
        references=[DIRECT],
    )
    traffic = scenario.table(
        "cold pull: upstream blob bytes / image size",
        "x image size",
        higher_is_better=False,
        references=[],
    )
    scenario.notes.append(
        "direct = skopeo pulling over the same link with no cache; its time is the reference "
        "for both the cold and the warm table."
    )
    scenario.notes.append(NO_COLLAPSING)
    for run in range(bench.runs("S4")):
        bench.log(f"S4 run {run + 1}")
        for name in bench.systems(DIRECT, *SINGLE_CLIENT_CACHES):
            dest = [bench.workdir / f"pull-slow-{name}"]
            try:
                with bench.serving(name, upstream=relay) as running:
                    mark = upstream.mark()
                    first = pull_many(running.host, image.name, image.tag, dest)
                    sent = upstream.traffic_since(mark)
                    second = None
                    if name != DIRECT:
                        second = pull_many(running.host, image.name, image.tag, dest)
                cold.add(name, first)
                warm.add(name, second if second is not None else first)
                traffic.add(name, sent.blob_bytes / image.size)
            except FAILURES as exc:
                for table in (cold, warm, traffic):
                    table.fail(name, short_error(exc))
    scenario.targets.append(
        ratio_target(
            "S4",
            "cold pull <= 1.05x direct",
            [cold.ratio(REGCACHE, DIRECT)],
            lambda r: r <= 1.05,
        )
    )
    speedup = warm.ratio(REGCACHE, DIRECT)
    scenario.targets.append(
        ratio_target(
            "S4",
            "warm pull >= 10x faster than direct",
            [None if speedup is None else 1 / speedup],
            lambda r: r >= 10,
            "x faster",
        )
    )
