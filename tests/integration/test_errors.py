"""Bad input gets an OCI error envelope with the right status, never a stack trace."""

from __future__ import annotations

import pytest

from tests.support.http import request
from tests.support.images import PushedImage
from tests.support.regcache import Regcache

DIGEST = "sha256:" + "a" * 64


def test_base_endpoint(regcache: Regcache) -> None:
    answer = request(regcache.url, "GET", "/v2/")
    assert answer.status == 200
    assert answer.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v2/UPPER/manifests/latest", 400, "NAME_INVALID"),
        ("GET", "/v2/a//b/manifests/latest", 400, "NAME_INVALID"),
        ("GET", "/v2/../../etc/manifests/latest", 400, "NAME_INVALID"),
        ("GET", "/v2/a/manifests/-bad-tag", 400, "TAG_INVALID"),
        ("GET", "/v2/a/blobs/sha256:xyz", 400, "DIGEST_INVALID"),
        ("GET", "/v2/a/blobs/sha256:../../../../etc/passwd", 404, "NAME_UNKNOWN"),
        ("GET", "/v2/a/blobs/md5:" + "a" * 32, 400, "DIGEST_INVALID"),
        ("GET", "/v2/a/manifests/sha256:123", 400, "DIGEST_INVALID"),
        ("PUT", "/v2/a/manifests/latest", 405, "UNSUPPORTED"),
        ("DELETE", f"/v2/a/blobs/{DIGEST}", 405, "UNSUPPORTED"),
        ("POST", "/v2/a/blobs/uploads/", 405, "UNSUPPORTED"),
        ("PATCH", "/v2/a/blobs/uploads/123", 405, "UNSUPPORTED"),
        ("GET", "/v1/search", 404, "UNSUPPORTED"),
        ("GET", "/v1/repositories/a/images", 404, "UNSUPPORTED"),
        ("GET", "/v2/a/nothing", 404, "NAME_UNKNOWN"),
        ("GET", "/elsewhere", 404, "NAME_UNKNOWN"),
    ],
)
def test_bad_requests(regcache: Regcache, method: str, path: str, status: int, code: str) -> None:
    answer = request(regcache.url, method, path)
    assert answer.status == status
    assert answer.error_codes() == [code]
    assert answer.headers["Content-Type"].startswith("application/json")
    assert "Traceback" not in regcache.log()


def test_v1_error_says_only_v2_is_served(regcache: Regcache) -> None:
    answer = request(regcache.url, "GET", "/v1/_ping")
    assert "v2" in answer.json()["errors"][0]["message"]


@pytest.mark.parametrize("header", ["bytes=abc", "items=0-1", "bytes=5-1", "bytes=-0"])
def test_bad_ranges_cold_and_warm(
    regcache: Regcache, images: dict[str, PushedImage], header: str
) -> None:
    image = images["oci/oci-img:v1"]
    path = f"/v2/{image.name}/blobs/{image.blob_digests[-1]}"
    for _ in ("cold", "warm"):
        answer = request(regcache.url, "GET", path, {"Range": header})
        assert answer.status == 416
        assert answer.error_codes() == ["RANGE_INVALID"]
        assert answer.headers["Content-Range"].startswith("bytes */")
    assert request(regcache.url, "GET", path).status == 200


def test_unknown_blob_with_a_range(regcache: Regcache, images: dict[str, PushedImage]) -> None:
    answer = request(regcache.url, "GET", f"/v2/oci/oci-img/blobs/{DIGEST}", {"Range": "bytes=0-1"})
    assert answer.status == 404
    assert answer.error_codes() == ["BLOB_UNKNOWN"]
