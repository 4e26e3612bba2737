"""S5: manifest hits under wrk, by digest and by tag."""

from __future__ import annotations

from contextlib import ExitStack

from bench.clients import ClientError, get, wrk
from bench.common import FAILURES, short_error
from bench.context import PULL, Bench
from bench.images import OCI_MANIFEST
from bench.results import Scenario
from bench.systems import DISTRIBUTION, NGINX_SYS, REGCACHE, SQUID_SYS
from bench.targets import ratio_target


def s5_manifest_hits(bench: Bench) -> Scenario:
    image = bench.images[PULL]
    profile = bench.profile
    scenario = Scenario(
        "S5",
        f"Manifest hits: wrk -t{profile.wrk_threads} -c{profile.wrk_connections} "
        f"-d{profile.wrk_seconds:g}s --latency",
    )
    scenario.notes.append(
        f"GET of a cached {len(image.manifest)}-byte OCI manifest with `Accept: {OCI_MANIFEST}`; "
        "regcache started with REGCACHE_TAGS_TTL=3600 so that the tag counts as fresh. "
        "nginx serves the manifest as a static file, so only by digest (by tag is the same). "
        "Left out: squid-cf (collapsed forwarding changes nothing for hits) and direct (the "
        "upstream is distribution serving its own storage; squid, which does not cache "
        "manifests, shows about its speed)."
    )
    paths = {
        "by digest": f"/v2/{image.name}/manifests/{image.manifest_digest}",
        "by tag": f"/v2/{image.name}/manifests/{image.tag}",
    }
    headers = {"Accept": OCI_MANIFEST}
    rps = {
        kind: scenario.table(
            f"{kind}: requests/s",
            "req/s",
            higher_is_better=True,
            references=[DISTRIBUTION, NGINX_SYS] if kind == "by digest" else [DISTRIBUTION],
        )
        for kind in paths
    }
    p99 = {
        kind: scenario.table(
            f"{kind}: p99 latency", "ms", higher_is_better=False, references=[DISTRIBUTION]
        )
        for kind in paths
    }
    names = bench.systems(NGINX_SYS, REGCACHE, DISTRIBUTION, SQUID_SYS)
    with ExitStack() as stack:
        hosts: dict[str, str] = {}
        for name in names:
            env = {"REGCACHE_TAGS_TTL": "3600"} if name == REGCACHE else None
            try:
                running = stack.enter_context(bench.serving(name, env=env))
                for path in paths.values():
                    for _ in range(2):
                        answer = get(running.host, path, headers)
                        media_type = answer.content_type.split(";")[0].strip()
                        if (
                            answer.status != 200
                            or answer.body != image.manifest
                            or media_type != OCI_MANIFEST
                        ):
                            raise ClientError(f"GET {path}: {answer.status} {answer.content_type}")
                hosts[name] = running.host
            except FAILURES as exc:
                for table in (*rps.values(), *p99.values()):
                    table.fail(name, short_error(exc))
        for run in range(bench.runs("S5")):
            bench.log(f"S5 run {run + 1}")
            for name, host in hosts.items():
                for kind, path in paths.items():
                    if name == NGINX_SYS and kind != "by digest":
                        continue
                    try:
                        result = wrk(
                            f"http://{host}{path}",
                            headers=headers,
                            threads=profile.wrk_threads,
                            connections=profile.wrk_connections,
                            seconds=profile.wrk_seconds,
                        )
                    except FAILURES as exc:
                        rps[kind].fail(name, short_error(exc))
                        continue
                    if result.bad > 0.001 * max(result.requests, 1):
                        rps[kind].fail(name, f"{result.bad} of {result.requests} failed")
                        continue
                    rps[kind].add(name, result.requests_per_second)
                    p99[kind].add(name, result.p99_ms)
    scenario.targets.append(
        ratio_target(
            "S5",
            "manifest hits >= 10x distribution's req/s (by digest, by tag)",
            [table.ratio(REGCACHE, DISTRIBUTION) for table in rps.values()],
            lambda r: r >= 10,
        )
    )
    return scenario
