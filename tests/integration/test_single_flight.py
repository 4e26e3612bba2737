"""One upstream fetch per blob, however many clients ask at once, each streaming as bytes arrive."""

from __future__ import annotations

import hashlib
import http.client
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import StartRegcache
from tests.support.http import connect, request
from tests.support.images import MiB, PushedImage, assert_same_pulls, push_image, skopeo_pull
from tests.support.registry import Registry
from tests.support.relay import Fault, Relay

CLIENTS = 20


@pytest.fixture(scope="module")
def crowd_image(upstream: Registry, tmp_path_factory: pytest.TempPathFactory) -> PushedImage:
    return push_image(
        upstream, tmp_path_factory.mktemp("crowd"), "crowd/img", "v1",
        layer_sizes=[6 * MiB, 2 * MiB, 64 * 1024], seed=501,
    )  # fmt: skip


def test_twenty_concurrent_cold_pulls_fetch_each_blob_once(
    crowd_image: PushedImage, upstream: Registry, start: StartRegcache, tmp_path: Path
) -> None:
    server = start(upstream.url)
    skopeo_pull(f"docker://{upstream.host}/{crowd_image.ref}", tmp_path / "direct")
    before = {digest: upstream.blob_gets(digest) for digest in crowd_image.blob_digests}

    def pull(number: int) -> Path:
        dest = tmp_path / f"client-{number}"
        skopeo_pull(f"docker://{server.host}/{crowd_image.ref}", dest)
        return dest

    with ThreadPoolExecutor(CLIENTS) as pool:
        pulled = list(pool.map(pull, range(CLIENTS)))
    for dest in pulled:
        assert_same_pulls(tmp_path / "direct", dest)
    for digest in crowd_image.blob_digests:
        assert upstream.blob_gets(digest) - before[digest] == 1, digest


def test_every_client_gets_its_first_bytes_before_the_download_ends(
    crowd_image: PushedImage, upstream: Registry, relay: Relay, start: StartRegcache
) -> None:
    server = start(relay.url)
    layer = crowd_image.blob_digests[1]
    path = f"/v2/{crowd_image.name}/blobs/{layer}"
    relay.fault = Fault(stall_after=MiB, times=1)
    first_bytes = threading.Barrier(CLIENTS + 1, timeout=60)
    bodies: list[bytes] = []

    def fetch() -> None:
        conn = connect(server.url)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            head = response.read(1024)
            first_bytes.wait()  # every client holds bytes while the upstream is stalled
            bodies.append(head + response.read())
        finally:
            conn.close()

    threads = [threading.Thread(target=fetch) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        first_bytes.wait()
        assert relay.stalled.is_set()
        in_flight = request(server.url, "GET", path, {"Range": "bytes=100-199"})
        assert in_flight.status == 206
        assert in_flight.headers["X-Cache"] == "COALESCED"
    finally:
        relay.release_stall()
        for thread in threads:
            thread.join(60)
    assert len(bodies) == CLIENTS
    assert {hashlib.sha256(body).hexdigest() for body in bodies} == {layer.split(":")[1]}
    assert in_flight.body == bodies[0][100:200]
    assert len(relay.blob_requests) == 1


def test_same_manifest_from_many_clients_is_fetched_once(
    crowd_image: PushedImage, relay: Relay, start: StartRegcache
) -> None:
    server = start(relay.url)
    relay.fault = Fault(hang=True, every_request=True, times=1)
    path = f"/v2/{crowd_image.name}/manifests/{crowd_image.manifest_digest}"
    accept = {"Accept": crowd_image.media_type}
    with ThreadPoolExecutor(8) as pool:
        pending = [pool.submit(request, server.url, "GET", path, accept) for _ in range(8)]
        assert relay.stalled.wait(30)
        relay.release_stall()
        answers = [future.result() for future in pending]
    assert {answer.status for answer in answers} == {200}
    assert len({answer.body for answer in answers}) == 1
    manifest_gets = [r for r in relay.requests if r.startswith("GET") and "/manifests/" in r]
    assert len(manifest_gets) == 1


def test_a_client_cut_off_mid_stream_sees_a_broken_transfer(
    crowd_image: PushedImage, relay: Relay, start: StartRegcache
) -> None:
    """When resuming fails for good, every waiting client sees a failure and nothing is kept."""
    server = start(relay.url, env={"REGCACHE_UPSTREAM_TIMEOUT": "5"})
    layer = crowd_image.blob_digests[1]
    relay.fault = Fault(cut_after=MiB)
    conn = connect(server.url)
    conn.request("GET", f"/v2/{crowd_image.name}/blobs/{layer}")
    response = conn.getresponse()
    assert response.status == 200
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    conn.close()
    assert 2 <= len(relay.blob_requests) <= 7, "resumed a bounded number of times"
    assert all(r.range and r.range.startswith("bytes=") for r in relay.blob_requests[1:])
    assert not list((server.cache_dir / "blobs").glob(f"sha256/*/{layer.split(':')[1]}"))
