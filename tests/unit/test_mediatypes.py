from __future__ import annotations

import pytest

from regcache.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    acceptable,
    parse_accept,
    sniff_media_type,
    upstream_accept,
)

DOCKER_ONLY = parse_accept([f"{DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST};q=0.9"])


def test_parse_accept_splits_headers_and_drops_parameters() -> None:
    assert parse_accept([f"{OCI_MANIFEST};q=0.5, {OCI_INDEX}", DOCKER_MANIFEST]) == {
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
    }


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, OCI_INDEX])
def test_docker_only_clients_never_get_oci(media_type: str) -> None:
    assert not acceptable(media_type, DOCKER_ONLY)
    assert not acceptable(media_type, set())


@pytest.mark.parametrize("media_type", [DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])
def test_docker_types_for_docker_clients_and_clients_without_accept(media_type: str) -> None:
    assert acceptable(media_type, DOCKER_ONLY)
    assert acceptable(media_type, set())


def test_wildcards() -> None:
    assert acceptable(OCI_INDEX, {"*/*"})
    assert acceptable(OCI_INDEX, {"application/*"})
    assert not acceptable(OCI_INDEX, {"text/*"})


def test_upstream_accept_forwards_the_clients_types() -> None:
    assert set(upstream_accept(DOCKER_ONLY).split(", ")) == {DOCKER_MANIFEST, DOCKER_MANIFEST_LIST}
    assert OCI_INDEX in upstream_accept(set())


def test_sniff() -> None:
    assert sniff_media_type(b'{"mediaType": "%s"}' % OCI_INDEX.encode()) == OCI_INDEX
    assert sniff_media_type(b'{"manifests": []}') == OCI_INDEX
    assert sniff_media_type(b'{"layers": []}') == OCI_MANIFEST
    assert sniff_media_type(b"not json") is None
