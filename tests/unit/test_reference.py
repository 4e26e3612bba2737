from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regcache.errors import DigestInvalid, NameInvalid, NameUnknown, TagInvalid
from regcache.paths import Endpoint, parse_path
from regcache.reference import Digest, validate_name, validate_tag

VALID_NAMES = ["alpine", "library/alpine", "a/b/c", "my-org/my_repo", "x.y/z__w", "a0-9/b--c"]
INVALID_NAMES = ["", "Alpine", "a//b", "/a", "a/", "a..b", "-a", "a/../b", "a b", "a" * 256, ".."]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names(name: str) -> None:
    with pytest.raises(NameInvalid):
        validate_name(name)


@given(st.text(alphabet="abc./_-ABC0", max_size=30))
def test_a_valid_name_never_leaves_its_directory(name: str) -> None:
    try:
        validate_name(name)
    except NameInvalid:
        return
    parts = name.split("/")
    assert all(part and part not in (".", "..") and not part.startswith(".") for part in parts)


def test_digest_roundtrip() -> None:
    hex_ = hashlib.sha256(b"x").hexdigest()
    digest = Digest.parse(f"sha256:{hex_}")
    assert str(digest) == f"sha256:{hex_}"


@pytest.mark.parametrize(
    "text",
    [
        "sha256:abc",
        "sha256:" + "g" * 64,
        "md5:" + "a" * 32,
        "sha256" + "a" * 64,
        "../etc/passwd",
        "sha256:" + "A" * 64,
        "sha512:" + "a" * 128,
    ],
)
def test_invalid_digests(text: str) -> None:
    with pytest.raises(DigestInvalid):
        Digest.parse(text)


@given(st.text(max_size=80))
def test_parsed_digests_are_always_64_hex(text: str) -> None:
    try:
        digest = Digest.parse(text)
    except DigestInvalid:
        return
    assert re.fullmatch(r"[0-9a-f]{64}", digest.hex)


@pytest.mark.parametrize("tag", ["latest", "v1.2.3", "_x", "A" * 128])
def test_valid_tags(tag: str) -> None:
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".x", "-x", "a" * 129, "a/b", "a b"])
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(TagInvalid):
        validate_tag(tag)


@pytest.mark.parametrize(
    ("path", "endpoint", "name", "reference"),
    [
        ("", Endpoint.BASE, "", ""),
        ("library/alpine/manifests/latest", Endpoint.MANIFEST, "library/alpine", "latest"),
        ("a/blobs/sha256:" + "a" * 64, Endpoint.BLOB, "a", "sha256:" + "a" * 64),
        ("a/b/tags/list", Endpoint.TAGS, "a/b", ""),
        ("a/blobs/uploads/", Endpoint.UPLOAD, "a", ""),
        ("a/blobs/uploads/123", Endpoint.UPLOAD, "a", "123"),
        ("a/manifests/blobs/manifests/x", Endpoint.MANIFEST, "a/manifests/blobs", "x"),
    ],
)
def test_parse_path(path: str, endpoint: Endpoint, name: str, reference: str) -> None:
    route = parse_path(path)
    assert (route.endpoint, route.name, route.reference) == (endpoint, name, reference)


def test_unknown_path() -> None:
    with pytest.raises(NameUnknown):
        parse_path("a/nothing/here")
