"""Pulls through regcache by skopeo from a real distribution registry, cold and warm."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import StartRegcache
from tests.support.http import request
from tests.support.images import PushedImage, assert_same_pulls, skopeo_pull
from tests.support.regcache import Regcache
from tests.support.registry import Registry

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
DOCKER_ONLY = (
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json"
)


def stored_blobs(server: Regcache, *, settle: bool = True) -> set[str]:
    """The blobs a regcache keeps, once its downloads are over (`settle=False`: it is dead)."""
    if settle:
        server.settle()
    return {"sha256:" + path.name for path in (server.cache_dir / "blobs").glob("sha256/*/*")}


@pytest.mark.parametrize(
    "ref", ["library/docker-img:latest", "oci/oci-img:v1", "multi/oci-index:latest",
            "multi/docker-list:latest"]
)  # fmt: skip
def test_skopeo_cold_then_warm_is_identical_to_a_direct_pull(
    ref: str,
    images: dict[str, PushedImage],
    upstream: Registry,
    regcache: Regcache,
    tmp_path: Path,
) -> None:
    image = images[ref]
    skopeo_pull(f"docker://{upstream.host}/{ref}", tmp_path / "direct", all_images=True)
    skopeo_pull(f"docker://{regcache.host}/{ref}", tmp_path / "cold", all_images=True)
    assert_same_pulls(tmp_path / "direct", tmp_path / "cold")
    assert set(image.blob_digests) <= stored_blobs(regcache)

    before = upstream.blob_gets()
    skopeo_pull(f"docker://{regcache.host}/{ref}", tmp_path / "warm", all_images=True)
    assert_same_pulls(tmp_path / "direct", tmp_path / "warm")
    assert upstream.blob_gets() == before, "a warm pull must not fetch blobs upstream"


def test_same_blob_through_two_repositories_is_stored_once(
    images: dict[str, PushedImage], upstream: Registry, regcache: Regcache, tmp_path: Path
) -> None:
    image = images["oci/oci-img:v1"]
    layer = image.blob_digests[-1]
    # distribution links a blob into another repository by a cross-repository mount.
    mount = request(
        upstream.url, "POST", f"/v2/other/copy/blobs/uploads/?mount={layer}&from={image.name}"
    )
    assert mount.status == 201
    first = request(regcache.url, "GET", f"/v2/{image.name}/blobs/{layer}")
    regcache.settle()
    gets = upstream.blob_gets(layer)
    second = request(regcache.url, "GET", f"/v2/other/copy/blobs/{layer}")
    assert first.status == second.status == 200
    assert first.body == second.body
    assert hashlib.sha256(second.body).hexdigest() == layer.split(":")[1]
    assert second.headers["X-Cache"] == "HIT"
    assert upstream.blob_gets(layer) == gets
    assert len([p for p in stored_blobs(regcache) if p == layer]) == 1


def test_docker_only_accept_never_gets_an_oci_manifest(
    images: dict[str, PushedImage], regcache: Regcache
) -> None:
    for ref in ("oci/oci-img:v1", "multi/oci-index:latest"):
        image = images[ref]
        cold = request(
            regcache.url, "GET", f"/v2/{image.name}/manifests/{image.tag}",
            {"Accept": DOCKER_ONLY},
        )  # fmt: skip
        assert cold.status == 404
        assert cold.error_codes() == ["MANIFEST_UNKNOWN"]
        cached = request(
            regcache.url, "GET", f"/v2/{image.name}/manifests/{image.tag}",
            {"Accept": MANIFEST_ACCEPT},
        )  # fmt: skip
        assert cached.status == 200
        assert cached.headers["Content-Type"] == image.media_type
        for reference in (image.tag, image.manifest_digest):
            warm = request(
                regcache.url, "GET", f"/v2/{image.name}/manifests/{reference}",
                {"Accept": DOCKER_ONLY},
            )  # fmt: skip
            assert warm.status == 404, reference
            assert warm.error_codes() == ["MANIFEST_UNKNOWN"]
            no_accept = request(regcache.url, "GET", f"/v2/{image.name}/manifests/{reference}")
            assert no_accept.status == 404


@pytest.mark.parametrize(
    "ref", ["library/docker-img:latest", "oci/oci-img:v1", "multi/oci-index:latest",
            "multi/docker-list:latest"]
)  # fmt: skip
def test_manifest_get_and_head_headers(
    ref: str, images: dict[str, PushedImage], regcache: Regcache
) -> None:
    image = images[ref]
    for reference in (image.tag, image.manifest_digest):
        path = f"/v2/{image.name}/manifests/{reference}"
        got = request(regcache.url, "GET", path, {"Accept": MANIFEST_ACCEPT})
        assert got.status == 200
        assert f"sha256:{hashlib.sha256(got.body).hexdigest()}" == image.manifest_digest
        assert got.headers["Docker-Content-Digest"] == image.manifest_digest
        assert got.headers["Content-Type"] == image.media_type
        assert int(got.headers["Content-Length"]) == len(got.body)
        assert got.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        head = request(regcache.url, "HEAD", path, {"Accept": MANIFEST_ACCEPT})
        assert head.status == 200
        assert head.body == b""
        assert int(head.headers["Content-Length"]) == len(got.body)
        assert head.headers["Docker-Content-Digest"] == image.manifest_digest
        assert head.headers["Content-Type"] == image.media_type


def test_blob_head_and_ranges(
    images: dict[str, PushedImage], upstream: Registry, regcache: Regcache
) -> None:
    image = images["library/docker-img:latest"]
    layer = image.blob_digests[1]
    path = f"/v2/{image.name}/blobs/{layer}"
    direct = request(upstream.url, "GET", path).body
    size = len(direct)
    gets = upstream.blob_gets(layer)

    cold_head = request(regcache.url, "HEAD", path)
    assert cold_head.status == 200
    assert int(cold_head.headers["Content-Length"]) == size
    assert cold_head.headers["Docker-Content-Digest"] == layer
    assert upstream.blob_gets(layer) == gets, "HEAD of an uncached blob must not download it"

    cold_range = request(regcache.url, "GET", path, {"Range": "bytes=10-99"})
    assert cold_range.status == 206
    assert cold_range.body == direct[10:100]
    assert cold_range.headers["Content-Range"] == f"bytes 10-99/{size}"
    # The whole body ends only once the download is verified.
    whole = request(regcache.url, "GET", path)
    assert (whole.status, whole.body) == (200, direct)
    assert upstream.blob_gets(layer) == gets + 1
    regcache.settle()

    for header, expected in (("bytes=0-0", direct[:1]), ("bytes=-5", direct[-5:]),
                             (f"bytes={size - 3}-", direct[-3:])):  # fmt: skip
        warm = request(regcache.url, "GET", path, {"Range": header})
        assert warm.status == 206, header
        assert warm.body == expected
        assert warm.headers["X-Cache"] == "HIT"
    head = request(regcache.url, "HEAD", path)
    assert (head.status, int(head.headers["Content-Length"]), head.body) == (200, size, b"")

    beyond = request(regcache.url, "GET", path, {"Range": f"bytes={size}-"})
    assert beyond.status == 416
    assert beyond.headers["Content-Range"] == f"bytes */{size}"
    assert beyond.error_codes() == ["RANGE_INVALID"]


def test_tags_list_is_passed_through(images: dict[str, PushedImage], regcache: Regcache) -> None:
    answer = request(regcache.url, "GET", "/v2/oci/oci-img/tags/list")
    assert answer.status == 200
    assert answer.json() == {"name": "oci/oci-img", "tags": ["v1"]}
    missing = request(regcache.url, "GET", "/v2/no/such/tags/list")
    assert missing.status == 404
    assert missing.error_codes() == ["NAME_UNKNOWN"]


def test_unknown_manifest_and_blob(regcache: Regcache, images: dict[str, PushedImage]) -> None:
    tag = request(regcache.url, "GET", "/v2/oci/oci-img/manifests/nope")
    assert tag.status == 404
    assert tag.error_codes() == ["MANIFEST_UNKNOWN"]
    blob = request(regcache.url, "GET", "/v2/oci/oci-img/blobs/sha256:" + "0" * 64)
    assert blob.status == 404
    assert blob.error_codes() == ["BLOB_UNKNOWN"]


def test_restart_keeps_the_cache_and_serves_it_with_the_upstream_gone(
    images: dict[str, PushedImage], upstream: Registry, start: StartRegcache, tmp_path: Path
) -> None:
    ref = "library/docker-img:latest"
    # Tags are kept per upstream name: both runs name theirs alike, as one configuration would.
    named = {"REGCACHE_UPSTREAM_NAME": "origin"}
    first = start(upstream.url, env=named)
    skopeo_pull(f"docker://{first.host}/{ref}", tmp_path / "first")
    assert first.stop() == 0
    (first.cache_dir / "tmp" / "leftover").write_bytes(b"partial")

    unreachable = "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused
    second = start(unreachable, cache_dir=first.cache_dir, env=named)
    skopeo_pull(f"docker://{second.host}/{ref}", tmp_path / "second")
    assert_same_pulls(tmp_path / "first", tmp_path / "second")
    assert not (first.cache_dir / "tmp" / "leftover").exists()
    image = images[ref]
    tagged = request(second.url, "GET", f"/v2/{image.name}/manifests/{image.tag}",
                     {"Accept": DOCKER_ONLY})  # fmt: skip
    assert tagged.status == 200
    assert "stale" in tagged.headers["Warning"].lower()
    uncached = request(second.url, "GET", "/v2/oci/oci-img/manifests/v1")
    assert uncached.status == 503
    assert uncached.error_codes() == ["UNAVAILABLE"]
