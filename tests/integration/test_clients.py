"""Pulls through regcache by real container runtimes: containerd (ctr) and dockerd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_pull import stored_blobs
from tests.support.containerd import Containerd, write_hosts_toml
from tests.support.dockerd import Dockerd
from tests.support.images import PushedImage
from tests.support.regcache import Regcache
from tests.support.registry import Registry

pytestmark = pytest.mark.clients


@pytest.fixture
def containerd(tmp_path: Path) -> Iterator[Containerd]:
    with Containerd(tmp_path / "containerd") as daemon:
        yield daemon


@pytest.fixture
def dockerd(tmp_path: Path) -> Iterator[Dockerd]:
    with Dockerd(tmp_path / "dockerd") as daemon:
        yield daemon


@pytest.mark.parametrize("ref", ["library/docker-img:latest", "multi/oci-index:latest"])
def test_ctr_pulls_through_regcache_cold_and_warm(
    ref: str,
    images: dict[str, PushedImage],
    upstream: Registry,
    regcache: Regcache,
    containerd: Containerd,
) -> None:
    image = images[ref]
    containerd.pull(f"{regcache.host}/{ref}", all_platforms=True)
    assert set(image.blob_digests) <= containerd.content_digests()

    containerd.remove_all()
    before = upstream.blob_gets()
    containerd.pull(f"{regcache.host}/{ref}", all_platforms=True)
    assert set(image.blob_digests) <= containerd.content_digests()
    assert upstream.blob_gets() == before


def test_ctr_pulls_through_a_hosts_toml_mirror(
    images: dict[str, PushedImage],
    upstream: Registry,
    regcache: Regcache,
    containerd: Containerd,
    tmp_path: Path,
) -> None:
    """The upstream's own name in the reference; hosts.toml sends the pull to regcache."""
    hosts = tmp_path / "hosts"
    write_hosts_toml(hosts, upstream.host, regcache.url)
    image = images["oci/oci-img:v1"]
    before = upstream.blob_gets()
    containerd.pull(f"{upstream.host}/{image.ref}", hosts_dir=hosts)
    assert set(image.blob_digests) <= containerd.content_digests()
    assert upstream.blob_gets() == before + len(image.blob_digests)
    assert set(image.blob_digests) <= stored_blobs(regcache), "the mirror was used"


@pytest.mark.parametrize("ref", ["library/docker-img:latest", "multi/docker-list:latest"])
def test_dockerd_pulls_through_regcache_as_the_seed_says(
    ref: str,
    images: dict[str, PushedImage],
    upstream: Registry,
    regcache: Regcache,
    dockerd: Dockerd,
) -> None:
    image = images[ref]
    dockerd.pull(f"{regcache.host}/{ref}")
    assert len(dockerd.image_ids()) == 1

    dockerd.remove_all()
    before = upstream.blob_gets()
    dockerd.pull(f"{regcache.host}/{ref}")
    assert len(dockerd.image_ids()) == 1
    assert upstream.blob_gets() == before
    assert image.manifest_digest in " ".join(dockerd.repo_digests(f"{regcache.host}/{ref}"))
