"""One regcache in front of two registries: routing by ns, path prefix, Host and default."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import StartRegcache
from tests.integration.test_pull import MANIFEST_ACCEPT, stored_blobs
from tests.support.containerd import Containerd
from tests.support.dockerd import Dockerd
from tests.support.http import request
from tests.support.images import PushedImage, assert_same_pulls, push_image, skopeo_pull
from tests.support.process import run
from tests.support.regcache import Regcache
from tests.support.registry import Registry


@dataclass
class Site:
    a: Registry
    b: Registry
    app_a: PushedImage
    app_b: PushedImage
    common: PushedImage


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Two registries with different images under one name, and one image in both."""
    root = tmp_path_factory.mktemp("routing")
    with Registry(root / "a") as a, Registry(root / "b") as b:
        app_a = push_image(a, root / "img-a", "shared/app", "v1", seed=901)
        app_b = push_image(b, root / "img-b", "shared/app", "v1", seed=902, docker=True)
        common = push_image(a, root / "img-c", "common/img", "v1", seed=903)
        push_image(b, root / "img-c2", "common/img", "v1", seed=903)
        yield Site(a, b, app_a, app_b, common)


def write_config(path: Path, site: Site, default: str = "a") -> Path:
    path.write_text(
        f'default_upstream = "{default}"\n'
        f'[[upstreams]]\nname = "a"\nurl = "{site.a.url}"\nhosts = ["a.cache.test"]\n'
        f'[[upstreams]]\nname = "b"\nurl = "{site.b.url}"\nhosts = ["b.cache.test"]\n'
    )
    return path


@pytest.fixture
def server(site: Site, start: StartRegcache, tmp_path: Path) -> Regcache:
    config = write_config(tmp_path / "regcache.toml", site)
    return start(None, args=("--config", str(config)))


def client_config(server: Regcache, client: str, config: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "regcache", "client-config", client, "--config", str(config),
         "--cache-url", server.url, "--output-dir", str(out)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return out


def test_containerd_hosts_toml_from_client_config_routes_by_ns(
    site: Site, server: Regcache, tmp_path: Path
) -> None:
    out = client_config(server, "containerd", tmp_path / "regcache.toml", tmp_path / "cfg")
    hosts = out / "etc/containerd/certs.d"
    assert {p.name for p in hosts.iterdir()} == {site.a.host, site.b.host}
    with Containerd(tmp_path / "containerd") as containerd:
        for registry, image in ((site.a, site.app_a), (site.b, site.app_b)):
            before = registry.blob_gets()
            containerd.pull(f"{registry.host}/{image.ref}", hosts_dir=hosts)
            assert set(image.blob_digests) <= containerd.content_digests()
            assert set(image.blob_digests) <= stored_blobs(server)
            assert registry.blob_gets() - before == len(image.blob_digests)


def test_skopeo_and_podman_through_path_prefix_mirrors(
    site: Site, server: Regcache, tmp_path: Path
) -> None:
    skopeo_pull(f"docker://{site.b.host}/{site.app_b.ref}", tmp_path / "direct")
    skopeo_pull(f"docker://{server.host}/b/{site.app_b.ref}", tmp_path / "prefixed")
    assert_same_pulls(tmp_path / "direct", tmp_path / "prefixed")

    out = client_config(server, "podman", tmp_path / "regcache.toml", tmp_path / "cfg")
    conf = out / "etc/containers/registries.conf.d/regcache.conf"
    env = {**os.environ, "CONTAINERS_REGISTRIES_CONF": str(conf)}
    before = site.a.blob_gets()
    with tempfile.TemporaryDirectory(prefix="podman-", dir="/tmp") as short:  # runroot <= 50
        run(
            ["podman", "--root", tmp_path / "podman-root", "--runroot", short,
             "--storage-driver", "vfs", "pull", "--quiet", f"{site.a.host}/{site.app_a.ref}"],
            env=env,
        )  # fmt: skip
    assert set(site.app_a.blob_digests) <= stored_blobs(server), "through the mirror"
    assert site.a.blob_gets() - before == len(site.app_a.blob_digests)


@pytest.mark.clients
def test_dockerd_through_the_default_upstream(site: Site, server: Regcache, tmp_path: Path) -> None:
    with Dockerd(tmp_path / "dockerd", registry_mirrors=[server.url]) as dockerd:
        dockerd.pull(site.app_a.ref)  # a docker.io reference: the mirror's default upstream
        assert set(site.app_a.blob_digests) <= stored_blobs(server)


def test_same_blob_from_two_upstreams_is_stored_once(
    site: Site, server: Regcache, tmp_path: Path
) -> None:
    skopeo_pull(f"docker://{server.host}/a/{site.common.ref}", tmp_path / "via-a")
    before = site.b.blob_gets()
    skopeo_pull(f"docker://{server.host}/b/{site.common.ref}", tmp_path / "via-b")
    assert_same_pulls(tmp_path / "via-a", tmp_path / "via-b")
    assert site.b.blob_gets() == before, "the second upstream's pull is a hit"


def test_host_based_routing(site: Site, server: Regcache) -> None:
    path = f"/v2/{site.app_b.name}/manifests/{site.app_b.tag}"
    by_host = request(server.url, "GET", path, {"Host": "b.cache.test", "Accept": MANIFEST_ACCEPT})
    assert by_host.headers["Docker-Content-Digest"] == site.app_b.manifest_digest
    default = request(server.url, "GET", path, {"Accept": MANIFEST_ACCEPT})
    assert default.headers["Docker-Content-Digest"] == site.app_a.manifest_digest


@pytest.mark.parametrize(
    ("path", "headers", "fragment"),
    [
        ("/v2/shared/app/manifests/v1?ns=quay.io", {}, "does not mirror registry 'quay.io'"),
        ("/v2/quay.io/shared/app/manifests/v1", {}, "no upstream is configured for registry"),
        ("/v2/ghcr.io/x/blobs/sha256:" + "a" * 64, {}, "no upstream is configured"),
    ],
)
def test_unknown_ns_and_prefix_are_clear_errors(
    server: Regcache, path: str, headers: dict[str, str], fragment: str
) -> None:
    answer = request(server.url, "GET", path, headers)
    assert answer.status == 404
    assert answer.error_codes() == ["NAME_UNKNOWN"]
    assert fragment in answer.json()["errors"][0]["message"]


def test_ns_is_echoed(site: Site, server: Regcache) -> None:
    answer = request(
        server.url, "HEAD", f"/v2/{site.app_b.name}/manifests/v1?ns={site.b.host}",
        {"Accept": MANIFEST_ACCEPT},
    )  # fmt: skip
    assert answer.status == 200
    assert answer.headers["OCI-Namespace"] == site.b.host
    assert answer.headers["Docker-Content-Digest"] == site.app_b.manifest_digest


def test_without_a_default_an_unknown_host_is_an_error(
    site: Site, start: StartRegcache, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "nodefault.toml", site, default="")
    server = start(None, args=("--config", str(config)))
    path = f"/v2/{site.app_a.name}/manifests/v1"
    unknown = request(server.url, "GET", path, {"Host": "other.test"})
    assert unknown.status == 404
    assert unknown.error_codes() == ["NAME_UNKNOWN"]
    assert "no default upstream" in unknown.json()["errors"][0]["message"]
    known = request(server.url, "GET", path, {"Host": "a.cache.test", "Accept": MANIFEST_ACCEPT})
    assert known.status == 200
