"""What reaches a client when the upstream sends wrong bytes, or the client goes away."""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest

from tests.conftest import StartRegcache
from tests.integration.test_pull import stored_blobs
from tests.support.http import connect, request
from tests.support.images import MiB, PushedImage, push_image
from tests.support.registry import Registry
from tests.support.relay import Fault, Relay


@pytest.fixture(scope="module")
def big_image(upstream: Registry, tmp_path_factory: pytest.TempPathFactory) -> PushedImage:
    return push_image(
        upstream, tmp_path_factory.mktemp("big"), "faults/big", "v1", layer_sizes=[8 * MiB], seed=77
    )


def layer_path(image: PushedImage) -> str:
    return f"/v2/{image.name}/blobs/{image.blob_digests[-1]}"


def test_a_blob_that_does_not_match_its_digest_is_not_kept(
    big_image: PushedImage, relay: Relay, start: StartRegcache
) -> None:
    server = start(relay.url)
    relay.fault = Fault(flip_byte_at=5 * MiB, times=1)
    conn = connect(server.url)
    conn.request("GET", layer_path(big_image))
    response = conn.getresponse()
    assert response.status == 200
    expected = int(response.headers["Content-Length"])
    with pytest.raises(http.client.IncompleteRead) as caught:
        response.read()
    conn.close()
    assert len(caught.value.partial) < expected
    assert big_image.blob_digests[-1] not in stored_blobs(server)
    assert list((server.cache_dir / "tmp").iterdir()) == []

    again = request(server.url, "GET", layer_path(big_image))
    assert again.status == 200
    assert again.headers["X-Cache"] == "MISS"
    assert big_image.blob_digests[-1] in stored_blobs(server)


def test_a_client_that_goes_away_mid_blob_does_not_stop_the_download(
    big_image: PushedImage, relay: Relay, start: StartRegcache
) -> None:
    server = start(relay.url)
    relay.fault = Fault(stall_after=2 * MiB, times=1)
    conn = connect(server.url)
    conn.request("GET", layer_path(big_image))
    response = conn.getresponse()
    assert response.status == 200
    assert len(response.read(MiB)) == MiB
    assert relay.stalled.wait(30)
    conn.close()  # the client is gone while the upstream transfer is held up
    relay.release_stall()

    later = request(server.url, "GET", layer_path(big_image))
    assert later.status == 200
    assert later.headers["X-Cache"] in ("HIT", "COALESCED")
    assert len(relay.blob_requests) == 1, "the first download must have gone on and been kept"
    assert big_image.blob_digests[-1] in stored_blobs(server)


def test_the_budget_evicts_least_recently_used_blobs(
    images: dict[str, PushedImage], upstream: Registry, start: StartRegcache, tmp_path: Path
) -> None:
    first, second = images["library/docker-img:latest"], images["oci/oci-img:v1"]
    budget = second.total_size + first.total_size // 2
    server = start(upstream.url, args=("--cache-size", f"{budget}B"))
    for image in (first, second):
        for digest in image.blob_digests:
            answer = request(server.url, "GET", f"/v2/{image.name}/blobs/{digest}")
            assert answer.status == 200
    kept = stored_blobs(server)
    used = sum(p.stat().st_size for p in (server.cache_dir / "blobs").glob("sha256/*/*"))
    assert used <= budget
    assert set(second.blob_digests) <= kept, "the most recent blobs stay"
    assert not set(first.blob_digests) <= kept, "the least recently used go"
