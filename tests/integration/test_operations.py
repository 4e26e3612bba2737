"""Operating regcache: the command line, metrics, the access log, health, and SIGTERM."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import StartRegcache
from tests.integration.test_pull import MANIFEST_ACCEPT, stored_blobs
from tests.support.http import connect, request
from tests.support.images import MiB, PushedImage, push_image, skopeo_pull
from tests.support.regcache import Regcache
from tests.support.registry import Registry
from tests.support.relay import Fault, Relay


@pytest.fixture(scope="module")
def ops_image(upstream: Registry, tmp_path_factory: pytest.TempPathFactory) -> PushedImage:
    return push_image(
        upstream, tmp_path_factory.mktemp("ops"), "ops/app", "v1",
        layer_sizes=[2 * MiB, 64 * 1024], seed=701,
    )  # fmt: skip


def cli(server: Regcache, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regcache", *args, "--admin-url", server.admin_url,
         "--cache-dir", str(server.cache_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def cli_json(server: Regcache, *args: str) -> object:
    result = cli(server, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_command_against_a_running_cache(
    images: dict[str, PushedImage], ops_image: PushedImage, upstream: Registry,
    start: StartRegcache, tmp_path: Path,
) -> None:  # fmt: skip
    server = start(upstream.url)
    skopeo_pull(f"docker://{server.host}/{ops_image.ref}", tmp_path / "pulled")
    skopeo_pull(f"docker://{server.host}/{ops_image.ref}", tmp_path / "again")
    server.settle()

    status = cli(server, "status")
    assert status.returncode == 0
    assert "hit ratio" in status.stdout and "healthy" in status.stdout
    stats = cli_json(server, "status")
    assert isinstance(stats, dict)
    assert stats["cache"]["blobs"] == len(ops_image.blob_digests)
    assert stats["requests"]["misses"] == len(ops_image.blob_digests) + 1
    assert stats["requests"]["hits"] == len(ops_image.blob_digests) + 1

    listing = cli_json(server, "ls")
    assert isinstance(listing, list)
    assert [(r["repository"], r["tag"], r["digest"]) for r in listing] == [
        (ops_image.name, ops_image.tag, ops_image.manifest_digest)
    ]
    assert listing[0]["pulls"] == 2
    assert listing[0]["size"] == ops_image.total_size - _manifest_size(server, ops_image)
    assert ops_image.name in cli(server, "ls").stdout

    assert cli_json(server, "gc") == {"removed": 0, "freed_bytes": 0}
    verified = cli_json(server, "verify")
    assert verified == {"event": "done", "checked": len(ops_image.blob_digests) + 1,
                        "corrupt": []}  # fmt: skip

    layer = ops_image.blob_digests[-1]
    stored = server.cache_dir / "blobs" / "sha256" / layer[7:9] / layer[7:]
    stored.write_bytes(b"bit rot")
    corrupt = cli(server, "verify")
    assert corrupt.returncode == 1
    assert "corrupt 1" in corrupt.stdout
    assert layer not in stored_blobs(server)

    prefetched = cli(server, "prefetch", "multi/oci-index:latest", images["oci/oci-img:v1"].ref)
    assert prefetched.returncode == 0, prefetched.stderr
    index = images["multi/oci-index:latest"]
    assert set(index.blob_digests) <= stored_blobs(server), "every platform"
    assert "0 errors" in prefetched.stdout
    listed = tmp_path / "images.txt"
    listed.write_text("# warm these\nnope/missing:v1\n")
    missing = cli(server, "prefetch", "--file", str(listed))
    assert missing.returncode == 1

    removed = cli_json(server, "rm", "multi/oci-index")
    assert isinstance(removed, dict) and removed["removed"] > 0
    assert not set(index.blob_digests) & stored_blobs(server)
    purged = cli_json(server, "purge", "--older-than", "2999-01-01")
    assert isinstance(purged, dict) and purged["removed"] > 0
    assert stored_blobs(server) == set()


def _manifest_size(server: Regcache, image: PushedImage) -> int:
    path = f"/v2/{image.name}/manifests/{image.manifest_digest}"
    return len(request(server.url, "GET", path, {"Accept": MANIFEST_ACCEPT}).body)


def test_commands_need_the_admin_token_and_a_reachable_server(
    upstream: Registry, start: StartRegcache
) -> None:
    server = start(upstream.url)
    refused = request(server.admin_url, "POST", "/api/gc")
    assert refused.status == 401
    allowed = request(server.admin_url, "POST", "/api/gc",
                      {"Authorization": f"Bearer {server.admin_token}"})  # fmt: skip
    assert allowed.status == 200
    assert request(server.url, "GET", "/api/stats").status == 404, "not on the public listener"
    unreachable = subprocess.run(
        [sys.executable, "-m", "regcache", "status", "--admin-url", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert unreachable.returncode == 3
    assert "cannot reach" in unreachable.stderr


def test_health_and_readiness(upstream: Registry, start: StartRegcache) -> None:
    server = start(upstream.url)
    assert request(server.admin_url, "GET", "/healthz").json() == {"status": "ok"}
    ready = request(server.admin_url, "GET", "/readyz")
    assert (ready.status, ready.json()["ready"]) == (200, True)
    tmp = server.cache_dir / "tmp"
    shutil.rmtree(tmp)
    tmp.write_text("not a directory: nothing can be written below it")
    broken = request(server.admin_url, "GET", "/readyz")
    assert (broken.status, broken.json()["checks"]["storage"]) == (503, False)
    tmp.unlink()
    tmp.mkdir()
    assert request(server.admin_url, "GET", "/readyz").status == 200


def test_metrics_and_access_log_after_hits_misses_and_coalesced_pulls(
    ops_image: PushedImage, relay: Relay, start: StartRegcache
) -> None:
    server = start(relay.url, args=("--log-format", "json"))
    small, large = ops_image.blob_digests[-1], ops_image.blob_digests[1]
    small_path = f"/v2/{ops_image.name}/blobs/{small}"
    large_path = f"/v2/{ops_image.name}/blobs/{large}"
    manifest_path = f"/v2/{ops_image.name}/manifests/{ops_image.manifest_digest}"

    first = request(server.url, "GET", small_path)
    server.settle()
    second = request(server.url, "GET", small_path)
    relay.reset(Fault(stall_after=MiB, times=1))
    bodies: list[bytes] = []
    leader = threading.Thread(target=lambda: bodies.append(_get(server, large_path)))
    leader.start()
    assert relay.stalled.wait(30)
    follower = threading.Thread(target=lambda: bodies.append(_get(server, large_path)))
    follower.start()
    _wait_for_waiters(server, 2)
    relay.release_stall()
    leader.join(60)
    follower.join(60)
    manifest_miss = request(server.url, "GET", manifest_path, {"Accept": MANIFEST_ACCEPT})
    manifest_hit = request(server.url, "GET", manifest_path, {"Accept": MANIFEST_ACCEPT})

    assert [first.headers["X-Cache"], second.headers["X-Cache"]] == ["MISS", "HIT"]
    assert [hashlib.sha256(b).hexdigest() for b in bodies] == [large[7:]] * 2
    metrics = _metrics(server)
    expected = {
        'regcache_responses_total{cache="MISS",kind="blob"}': 2.0,
        'regcache_responses_total{cache="HIT",kind="blob"}': 1.0,
        'regcache_responses_total{cache="COALESCED",kind="blob"}': 1.0,
        'regcache_responses_total{cache="MISS",kind="manifest"}': 1.0,
        'regcache_responses_total{cache="HIT",kind="manifest"}': 1.0,
        'regcache_client_bytes_total{source="cache"}': float(
            len(second.body) + len(manifest_hit.body)
        ),
        'regcache_client_bytes_total{source="upstream"}': float(
            len(first.body) + 2 * len(bodies[0]) + len(manifest_miss.body)
        ),
        'regcache_requests_total{method="GET",route="blob",status="200"}': 4.0,
        "regcache_downloads_in_flight": 0.0,
        "regcache_coalesced_waiters": 0.0,
    }
    assert {key: metrics.get(key) for key in expected} == expected
    assert metrics['regcache_upstream_bytes_total{upstream="' + relay_name(relay) + '"}'] >= (
        len(first.body) + len(bodies[0])
    )

    log_lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    access = [(e["path"], e["status"], e["cache"]) for e in log_lines if "cache" in e]
    assert Counter(access) == Counter(
        [(small_path, 200, "MISS"), (small_path, 200, "HIT"), (large_path, 200, "MISS"),
         (large_path, 200, "COALESCED"), (manifest_path, 200, "MISS"),
         (manifest_path, 200, "HIT")]
    )  # fmt: skip
    assert all(set(e) >= {"time", "method", "bytes", "duration", "remote"} for e in log_lines
               if "cache" in e)  # fmt: skip


def relay_name(relay: Relay) -> str:
    return relay.url.split("://", 1)[1]


def _get(server: Regcache, path: str) -> bytes:
    conn = connect(server.url)
    try:
        conn.request("GET", path)
        return conn.getresponse().read()
    finally:
        conn.close()


def _metrics(server: Regcache) -> dict[str, float]:
    text = request(server.admin_url, "GET", "/metrics").body.decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def _wait_for_waiters(server: Regcache, count: int) -> None:
    """Poll (bounded) until `count` clients read the download under way."""
    from tests.support.process import wait_for

    wait_for(
        lambda: _metrics(server).get("regcache_coalesced_waiters") == count,
        timeout=30,
        what=f"{count} readers of the download",
    )


def test_sigterm_lets_a_running_pull_finish_then_exits_0(
    ops_image: PushedImage, relay: Relay, start: StartRegcache
) -> None:
    server = start(relay.url)
    large = ops_image.blob_digests[1]
    relay.reset(Fault(stall_after=MiB, times=1))
    bodies: list[bytes] = []
    client = threading.Thread(
        target=lambda: bodies.append(_get(server, f"/v2/{ops_image.name}/blobs/{large}"))
    )
    client.start()
    assert relay.stalled.wait(30)
    server.process.send_signal(signal.SIGTERM)
    from tests.support.process import wait_for

    wait_for(lambda: "stopping" in server.log(), timeout=30, what="the stop to begin")
    with pytest.raises(OSError):
        request(server.url, "GET", "/v2/")  # no new connections
    relay.release_stall()
    client.join(60)
    assert server.process.wait(60) == 0
    assert [hashlib.sha256(body).hexdigest() for body in bodies] == [large[7:]]
