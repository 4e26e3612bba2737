"""The upstream down, hanging or rate limiting; regcache killed; the disk full or over budget."""

from __future__ import annotations

import hashlib
import http.client
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import StartRegcache
from tests.integration.test_pull import MANIFEST_ACCEPT, stored_blobs
from tests.support.http import connect, request
from tests.support.images import MiB, PushedImage, assert_same_pulls, push_image, skopeo_pull
from tests.support.registry import Registry
from tests.support.relay import Fault, Relay

TIMEOUT = 2.0


@pytest.fixture(scope="module")
def image(upstream: Registry, tmp_path_factory: pytest.TempPathFactory) -> PushedImage:
    return push_image(
        upstream, tmp_path_factory.mktemp("resilience"), "resilience/img", "v1",
        layer_sizes=[4 * MiB, 128 * 1024], seed=601,
    )  # fmt: skip


def timed_request(url: str, path: str) -> tuple[float, int, dict[str, str], list[str]]:
    began = time.monotonic()
    answer = request(url, "GET", path, {"Accept": MANIFEST_ACCEPT})
    codes = answer.error_codes() if answer.status >= 400 else []
    return time.monotonic() - began, answer.status, dict(answer.headers), codes


def test_a_hanging_upstream_gets_stale_tags_and_quick_errors(
    image: PushedImage, images: dict[str, PushedImage], relay: Relay, start: StartRegcache
) -> None:
    server = start(relay.url, env={"REGCACHE_UPSTREAM_TIMEOUT": str(TIMEOUT)})
    tag_path = f"/v2/{image.name}/manifests/{image.tag}"
    assert request(server.url, "GET", tag_path, {"Accept": MANIFEST_ACCEPT}).status == 200

    relay.reset(Fault(hang=True, every_request=True))
    elapsed, status, headers, _ = timed_request(server.url, tag_path)
    assert status == 200
    assert headers["X-Cache"] == "STALE"
    assert headers["Warning"].startswith("110 ")
    assert elapsed < TIMEOUT * 5, "stale content comes within the upstream timeout"

    other = images["oci/oci-img:v1"]
    elapsed, status, _, codes = timed_request(server.url, f"/v2/{other.name}/manifests/v1")
    assert (status, codes) == (503, ["UNAVAILABLE"])
    assert elapsed < TIMEOUT * 5
    relay.release_stall()


def test_a_stopped_upstream(
    image: PushedImage, images: dict[str, PushedImage], upstream: Registry,
    relay: Relay, start: StartRegcache,
) -> None:  # fmt: skip
    server = start(relay.url)
    tag_path = f"/v2/{image.name}/manifests/{image.tag}"
    layer = f"/v2/{image.name}/blobs/{image.blob_digests[-1]}"
    assert request(server.url, "GET", tag_path, {"Accept": MANIFEST_ACCEPT}).status == 200
    assert request(server.url, "GET", layer).status == 200
    server.settle()
    upstream.stop()
    try:
        _, status, headers, _ = timed_request(server.url, tag_path)
        assert (status, headers["X-Cache"]) == (200, "STALE")
        cached = request(server.url, "GET", layer)
        assert (cached.status, cached.headers["X-Cache"]) == (200, "HIT")
        other = images["oci/oci-img:v1"]
        _, status, _, codes = timed_request(server.url, f"/v2/{other.name}/manifests/v1")
        assert status in (502, 503)
        assert codes
    finally:
        upstream.start()


def test_a_rate_limited_upstream_is_not_hammered(
    image: PushedImage, images: dict[str, PushedImage], relay: Relay, start: StartRegcache
) -> None:
    server = start(relay.url)
    tag_path = f"/v2/{image.name}/manifests/{image.tag}"
    assert request(server.url, "GET", tag_path, {"Accept": MANIFEST_ACCEPT}).status == 200

    relay.reset(Fault(status=429, retry_after="120", every_request=True))
    _, status, headers, _ = timed_request(server.url, tag_path)
    assert (status, headers["X-Cache"]) == (200, "STALE")
    seen = len(relay.requests)

    other = images["oci/oci-img:v1"]
    for _ in range(5):
        _, status, headers, codes = timed_request(server.url, f"/v2/{other.name}/manifests/v1")
        assert (status, codes) == (429, ["TOOMANYREQUESTS"])
        assert 0 < int(headers["Retry-After"]) <= 120
        _, status, _, _ = timed_request(server.url, tag_path)
        assert status == 200
    assert len(relay.requests) == seen, "nothing more was sent upstream during Retry-After"


def test_pull_by_digest_of_cached_content_never_asks_the_upstream(
    image: PushedImage, relay: Relay, start: StartRegcache, tmp_path: Path
) -> None:
    server = start(relay.url)
    ref = f"{image.name}@{image.manifest_digest}"
    skopeo_pull(f"docker://{server.host}/{ref}", tmp_path / "cold")
    seen = len(relay.requests)
    skopeo_pull(f"docker://{server.host}/{ref}", tmp_path / "warm")
    assert_same_pulls(tmp_path / "cold", tmp_path / "warm")
    assert [r for r in relay.requests[seen:] if r != "GET /v2/"] == []


@pytest.mark.parametrize("offset", [0, 1, MiB, 3 * MiB, None])
def test_kill_9_during_a_cold_pull_then_restart(
    offset: int | None, image: PushedImage, relay: Relay, start: StartRegcache, tmp_path: Path
) -> None:
    """`kill -9` at a byte offset of the largest blob (None: after it was kept), then pull."""
    layer = image.blob_digests[1]
    path = f"/v2/{image.name}/blobs/{layer}"
    server = start(relay.url)
    if offset is None:
        assert request(server.url, "GET", path).status == 200
    else:
        relay.reset(Fault(stall_after=offset, times=1))
        client = threading.Thread(target=lambda: _read_quietly(server.url, path), daemon=True)
        client.start()
        assert relay.stalled.wait(30)
    server.kill()
    relay.reset()

    again = start(relay.url, cache_dir=server.cache_dir)
    assert list((server.cache_dir / "tmp").iterdir()) == []
    for stored in stored_blobs(server, settle=False):
        data = (server.cache_dir / "blobs" / "sha256" / stored[7:9] / stored[7:]).read_bytes()
        assert f"sha256:{hashlib.sha256(data).hexdigest()}" == stored, "only verified blobs"
    skopeo_pull(f"docker://{again.host}/{image.ref}", tmp_path / "after")
    assert (tmp_path / "after" / layer.split(":")[1]).exists()
    got = request(again.url, "GET", path)
    assert hashlib.sha256(got.body).hexdigest() == layer.split(":")[1]


def _read_quietly(url: str, path: str) -> None:
    conn = connect(url)
    try:
        conn.request("GET", path)
        conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        pass  # the server is killed under this client: a broken read is the point
    finally:
        conn.close()


def test_eviction_under_a_small_budget_while_pulls_run(
    images: dict[str, PushedImage], upstream: Registry, start: StartRegcache, tmp_path: Path
) -> None:
    largest = max(images.values(), key=lambda i: i.total_size)
    budget = int(largest.total_size * 1.5)
    server = start(upstream.url, args=("--cache-size", f"{budget}B"))

    def pull(ref: str, round_: int) -> None:
        skopeo_pull(f"docker://{server.host}/{ref}", tmp_path / f"{ref}-{round_}".replace("/", "_"),
                    all_images=True)  # fmt: skip

    with ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(pull, ref, n) for n in range(2) for ref in images]
        for job in jobs:
            job.result()  # no pull failed
    server.settle()
    used = sum(p.stat().st_size for p in (server.cache_dir / "blobs").glob("sha256/*/*"))
    assert used <= budget


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_disk_full_still_serves_the_client_and_keeps_nothing(
    image: PushedImage, upstream: Registry, start: StartRegcache, tiny_disk: Path
) -> None:
    server = start(upstream.url, cache_dir=tiny_disk / "cache", args=("--cache-size", "1GB"))
    layer = image.blob_digests[1]
    got = request(server.url, "GET", f"/v2/{image.name}/blobs/{layer}")
    assert got.status == 200
    assert hashlib.sha256(got.body).hexdigest() == layer.split(":")[1]
    assert layer not in stored_blobs(server)
    assert list((server.cache_dir / "tmp").iterdir()) == []
    assert "not kept" in server.log()
    small = image.blob_digests[-1]
    again = request(server.url, "GET", f"/v2/{image.name}/blobs/{small}")
    assert again.status == 200, "the server keeps serving"
    assert small in stored_blobs(server)
