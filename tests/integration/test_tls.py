"""The TLS listener, with a certificate from a test CA, as the seed's layout provides it."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from tests.conftest import StartRegcache
from tests.support.images import PushedImage, assert_same_pulls, skopeo_pull
from tests.support.registry import Registry


@pytest.fixture
def tls_dir(tmp_path: Path) -> tuple[Path, Path]:
    """A directory with cert.pem and key.pem for 127.0.0.1, and one with the CA for clients."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    certs = tmp_path / "tls"
    certs.mkdir()
    server.private_key_pem.write_to_path(str(certs / "key.pem"))
    server.cert_chain_pems[0].write_to_path(str(certs / "cert.pem"))
    trust = tmp_path / "trust"
    trust.mkdir()
    ca.cert_pem.write_to_path(str(trust / "ca.crt"))
    return certs, trust


def test_pull_through_the_tls_listener(
    tls_dir: tuple[Path, Path],
    images: dict[str, PushedImage],
    upstream: Registry,
    start: StartRegcache,
    tmp_path: Path,
) -> None:
    certs, trust = tls_dir
    server = start(upstream.url, args=("--tls-dir", str(certs)))
    assert server.url.startswith("https://")
    ref = "multi/oci-index:latest"
    skopeo_pull(f"docker://{upstream.host}/{ref}", tmp_path / "direct", all_images=True)
    skopeo_pull(
        f"docker://{server.host}/{ref}",
        tmp_path / "tls",
        tls_verify=True,
        all_images=True,
        extra_args=("--src-cert-dir", str(trust)),
    )
    assert_same_pulls(tmp_path / "direct", tmp_path / "tls")


def test_separate_certificate_and_key_flags(
    tls_dir: tuple[Path, Path], upstream: Registry, start: StartRegcache, tmp_path: Path
) -> None:
    certs, trust = tls_dir
    server = start(
        upstream.url,
        args=("--tls-cert", str(certs / "cert.pem"), "--tls-key", str(certs / "key.pem")),
    )
    skopeo_pull(
        f"docker://{server.host}/oci/oci-img:v1",
        tmp_path / "pulled",
        tls_verify=True,
        extra_args=("--src-cert-dir", str(trust)),
    )
    assert (tmp_path / "pulled" / "manifest.json").exists()
