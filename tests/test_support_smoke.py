"""The test helpers themselves, exercised against the real registry, skopeo, containerd, dockerd."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.containerd import Containerd, write_hosts_toml
from tests.support.dockerd import Dockerd
from tests.support.images import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    MiB,
    OciLayout,
    PushedImage,
    assert_same_pulls,
    build_image,
    diff_dirs,
    inspect_raw,
    push_image,
    seed_registry,
    skopeo_pull,
)
from tests.support.process import ProcessError
from tests.support.registry import Registry

EXPECTED_TYPES = {
    "library/docker-img:latest": DOCKER_MANIFEST,
    "oci/oci-img:v1": OCI_MANIFEST,
    "multi/oci-index:latest": OCI_INDEX,
    "multi/docker-list:latest": DOCKER_LIST,
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with Registry(tmp_path_factory.mktemp("registry")) as registry:
        yield registry


@pytest.fixture(scope="module")
def pushed(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, PushedImage]:
    return seed_registry(registry, tmp_path_factory.mktemp("images"))


def get(url_host: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection(url_host, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def test_seeded_manifests_are_stored_byte_for_byte(
    registry: Registry, pushed: dict[str, PushedImage]
) -> None:
    assert {ref: image.media_type for ref, image in pushed.items()} == EXPECTED_TYPES
    for ref, image in pushed.items():
        raw = inspect_raw(f"docker://{registry.host}/{ref}")
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == image.manifest_digest
        assert json.loads(raw)["mediaType"] == image.media_type
    assert set(pushed["multi/oci-index:latest"].platforms) == {"linux/amd64", "linux/arm64"}
    digests = [d for image in pushed.values() for d in image.blob_digests]
    assert len(digests) == len(set(digests)), "standard images must not share blobs"


@pytest.mark.parametrize("ref", sorted(EXPECTED_TYPES))
def test_skopeo_pull_gets_what_was_pushed(
    ref: str, registry: Registry, pushed: dict[str, PushedImage], tmp_path: Path
) -> None:
    image = pushed[ref]
    skopeo_pull(f"docker://{registry.host}/{ref}", tmp_path / "a", all_images=True)
    skopeo_pull(
        f"docker://{registry.host}/{image.name}@{image.manifest_digest}",
        tmp_path / "b",
        all_images=True,
    )
    assert_same_pulls(tmp_path / "a", tmp_path / "b")
    manifest = (tmp_path / "a" / "manifest.json").read_bytes()
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == image.manifest_digest
    for digest in image.blob_digests:
        blob = (tmp_path / "a" / digest.split(":")[1]).read_bytes()
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == digest


def test_diff_dirs_reports_differences(tmp_path: Path) -> None:
    for side in ("left", "right"):
        (tmp_path / side / "sub").mkdir(parents=True)
        (tmp_path / side / "same").write_bytes(b"x")
    (tmp_path / "left" / "sub" / "changed").write_bytes(b"1")
    (tmp_path / "right" / "sub" / "changed").write_bytes(b"2")
    (tmp_path / "right" / "extra").write_bytes(b"")
    assert diff_dirs(tmp_path / "left", tmp_path / "right") == ["extra", "sub/changed"]
    with pytest.raises(AssertionError):
        assert_same_pulls(tmp_path / "left", tmp_path / "right")


def test_layers_are_gzip_tars_with_matching_diff_ids(tmp_path: Path) -> None:
    layout = OciLayout(tmp_path / "layout")
    image = build_image(layout, "t", layer_sizes=[2 * MiB, 1000], seed=7)
    config_desc, *layers = image.blobs
    config = json.loads(layout.blob_path(config_desc.digest).read_bytes())
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    for layer, diff_id, size in zip(
        layers, config["rootfs"]["diff_ids"], [2 * MiB, 1000], strict=True
    ):
        compressed = layout.blob_path(layer.digest).read_bytes()
        uncompressed = gzip.decompress(compressed)
        assert "sha256:" + hashlib.sha256(uncompressed).hexdigest() == diff_id
        assert len(compressed) >= size, "payload must be incompressible"
        with tarfile.open(layout.blob_path(layer.digest)) as tar:
            assert [m.size for m in tar.getmembers() if m.isfile()] == [size]
    again = build_image(OciLayout(tmp_path / "again"), "t", layer_sizes=[2 * MiB, 1000], seed=7)
    assert again.descriptor.digest == image.descriptor.digest


def test_access_log_counts_blob_gets(registry: Registry, pushed: dict[str, PushedImage]) -> None:
    image = pushed["oci/oci-img:v1"]
    layer = image.blob_digests[1]
    before = registry.blob_gets(layer)
    status, _, body = get(registry.host, f"/v2/{image.name}/blobs/{layer}")
    assert status == 200
    assert registry.blob_gets(layer) == before + 1
    last = [e for e in registry.requests() if e.path.endswith(layer)][-1]
    assert (last.method, last.status, last.bytes) == ("GET", 200, len(body))


def test_distribution_accept_behaviour(registry: Registry, pushed: dict[str, PushedImage]) -> None:
    for ref in ("oci/oci-img:v1", "multi/oci-index:latest"):
        image = pushed[ref]
        for reference in (image.tag, image.manifest_digest):
            status, _, body = get(registry.host, f"/v2/{image.name}/manifests/{reference}")
            assert status == 404
            assert json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    docker = pushed["library/docker-img:latest"]
    status, content_type, _ = get(registry.host, f"/v2/{docker.name}/manifests/{docker.tag}")
    assert (status, content_type) == (
        200,
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    )
    by_digest = get(registry.host, f"/v2/{docker.name}/manifests/{docker.manifest_digest}")
    assert by_digest[:2] == (200, DOCKER_MANIFEST)


def test_registry_with_tls_and_basic_auth(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    tls = (tmp_path / "cert.pem", tmp_path / "key.pem")
    with Registry(tmp_path / "registry", htpasswd={"alice": "s3cret"}, tls=tls) as registry:
        assert registry.url.startswith("https://127.0.0.1:")
        image = push_image(
            registry, tmp_path, "private/img", "v1", layer_sizes=[1024], creds=("alice", "s3cret")
        )
        skopeo_pull(
            f"docker://{registry.host}/{image.ref}", tmp_path / "pulled", creds=("alice", "s3cret")
        )
        with pytest.raises(ProcessError, match=r"401|unauthorized|authentication required"):
            skopeo_pull(f"docker://{registry.host}/{image.ref}", tmp_path / "anon")
        assert [e.status for e in registry.requests() if e.path == "/v2/"][-1] == 401


def test_registry_token_auth_config_is_applied(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "token-ca.pem"))
    token_auth = {
        "realm": "http://127.0.0.1:9/token",
        "service": "test-registry",
        "issuer": "test-issuer",
        "rootcertbundle": str(tmp_path / "token-ca.pem"),
    }
    with Registry(tmp_path / "registry", token_auth=token_auth) as registry:
        conn = http.client.HTTPConnection(registry.host, timeout=10)
        conn.request("GET", "/v2/")
        response = conn.getresponse()
        conn.close()
        assert response.status == 401
        challenge = response.getheader("WWW-Authenticate", "")
        assert challenge.startswith('Bearer realm="http://127.0.0.1:9/token"')
        assert 'service="test-registry"' in challenge


def test_registry_moves_off_a_taken_port_and_restarts_in_place(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    taken = registry.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with registry:
            assert registry.port != taken
            push_image(registry, tmp_path, "keep/me", "v1", layer_sizes=[1024])
            registry.stop()
            port = registry.port
            registry.start()
            assert registry.port == port
            assert get(registry.host, "/v2/keep/me/tags/list")[0] == 200
            assert [e.path for e in registry.requests()].count("/v2/keep/me/tags/list") == 1


@pytest.mark.clients
def test_containerd_pulls_directly_and_through_hosts_dir(
    registry: Registry, pushed: dict[str, PushedImage], tmp_path: Path
) -> None:
    with Containerd(tmp_path / "containerd") as containerd:
        oci = pushed["oci/oci-img:v1"]
        containerd.pull(f"{registry.host}/{oci.ref}")
        assert {oci.manifest_digest, *oci.blob_digests} <= containerd.content_digests()

        write_hosts_toml(tmp_path / "hosts", "docker.io", registry.url)
        index = pushed["multi/oci-index:latest"]
        containerd.pull(
            f"docker.io/{index.ref}",
            hosts_dir=tmp_path / "hosts",
            plain_http=False,
            platform="linux/arm64",
        )
        assert index.platforms["linux/arm64"] in containerd.content_digests()
        assert index.platforms["linux/amd64"] not in containerd.content_digests()

        listed = pushed["multi/docker-list:latest"]
        write_hosts_toml(tmp_path / "hosts", registry.host, registry.url)
        containerd.pull(
            f"{registry.host}/{listed.ref}",
            hosts_dir=tmp_path / "hosts",
            plain_http=False,
            all_platforms=True,
        )
        assert set(listed.blob_digests) <= containerd.content_digests()

        containerd.remove_all()
        assert containerd.image_refs() == []
        assert containerd.content_digests() == set()


@pytest.mark.clients
def test_dockerd_pulls_directly_and_through_a_mirror(
    registry: Registry, pushed: dict[str, PushedImage], tmp_path: Path
) -> None:
    image = pushed["library/docker-img:latest"]
    config_digest = image.blob_digests[0]
    with Dockerd(tmp_path / "dockerd", registry_mirrors=[registry.url]) as dockerd:
        dockerd.pull(f"{registry.host}/{image.ref}")
        assert config_digest in dockerd.image_ids()
        expected = f"{registry.host}/{image.name}@{image.manifest_digest}"
        assert dockerd.repo_digests(f"{registry.host}/{image.ref}") == [expected]
        dockerd.remove_all()
        assert dockerd.image_ids() == set()

        before = registry.blob_gets(config_digest)
        dockerd.pull(f"docker.io/{image.ref}")
        assert config_digest in dockerd.image_ids()
        assert registry.blob_gets(config_digest) == before + 1
