"""Upstream authentication (Basic, token, TLS with a private CA, redirects) and client rights.

Each kind of upstream is a real distribution registry, shared by the module. The last test reads
the log of every regcache this module started, so it must stay last.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
import trustme

from tests.conftest import StartRegcache
from tests.support.containerd import Containerd
from tests.support.http import Answer, request
from tests.support.images import PushedImage, assert_same_pulls, push_image, skopeo_pull
from tests.support.process import ProcessError
from tests.support.redirect_server import RedirectingRegistry
from tests.support.regcache import Regcache
from tests.support.registry import Registry, hash_password
from tests.support.token_server import TokenServer, registry_token_config

Creds = tuple[str, str]

ALICE: Creds = ("alice", f"alice-{secrets.token_hex(8)}")
BOB: Creds = ("bob", f"bob-{secrets.token_hex(8)}")
CAROL: Creds = ("carol", f"carol-{secrets.token_hex(8)}")
"""A client of the cache itself (REGCACHE_AUTH_HTPASSWD), unknown upstream."""
WRONG: Creds = ("alice", f"wrong-{secrets.token_hex(8)}")
NOBODY: Creds = ("nobody", f"nobody-{secrets.token_hex(8)}")
EVERYONE = (ALICE, BOB, CAROL, WRONG, NOBODY)

CHALLENGE = 'Basic realm="regcache"'
REFUSAL_CODES = {401: "UNAUTHORIZED", 403: "DENIED"}
REFUSED = r"(?i)unauthorized|authentication required|denied|401|403"
MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


@dataclass(frozen=True)
class Upstream:
    registry: Registry
    images: dict[str, PushedImage]
    """By repository name."""
    creds: Creds | None = None
    """What a direct pull needs."""


class Serve(Protocol):
    def __call__(self, upstream_url: str, env: Mapping[str, str] | None = None) -> Regcache: ...


def configured(creds: Creds) -> dict[str, str]:
    return {"REGCACHE_UPSTREAM_USERNAME": creds[0], "REGCACHE_UPSTREAM_PASSWORD": creds[1]}


def basic_auth(creds: Creds) -> dict[str, str]:
    encoded = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """A registry with htpasswd auth: alice and bob may pull everything, nobody else anything."""
    workdir = tmp_path_factory.mktemp("basic")
    with Registry(workdir / "registry", htpasswd=dict([ALICE, BOB])) as registry:
        image = push_image(registry, workdir, "private/app", "v1", seed=21, creds=ALICE)
        yield Upstream(registry, {image.name: image}, ALICE)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    """Anyone may pull public/*, alice also private/*; bob is a user with no more rights."""
    with TokenServer(
        tmp_path_factory.mktemp("tokens"),
        users=dict([ALICE, BOB]),
        pull={None: ["public/*"], ALICE[0]: ["private/*"]},
        push={ALICE[0]},
    ) as server:
        yield server


@pytest.fixture(scope="module")
def token(tokens: TokenServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    workdir = tmp_path_factory.mktemp("token")
    with Registry(workdir / "registry", token_auth=registry_token_config(tokens)) as registry:
        pushed = [
            push_image(registry, workdir, name, "v1", seed=seed, creds=ALICE)
            for seed, name in ((22, "public/app"), (23, "private/app"))
        ]
        yield Upstream(registry, {image.name: image for image in pushed}, ALICE)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Upstream, Path]]:
    """A registry serving HTTPS with a certificate from a test CA, and that CA's PEM file."""
    workdir = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1")
    cert_pem, key_pem, ca_pem = workdir / "cert.pem", workdir / "key.pem", workdir / "ca.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert_pem))
    certificate.private_key_pem.write_to_path(str(key_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    with Registry(workdir / "registry", tls=(cert_pem, key_pem)) as registry:
        image = push_image(registry, workdir, "secure/app", "v1", seed=24)
        yield Upstream(registry, {image.name: image}), ca_pem


@pytest.fixture(scope="module")
def started() -> list[Regcache]:
    """Every regcache of this module, for the log check at its end."""
    return []


@pytest.fixture
def serve(start: StartRegcache, started: list[Regcache]) -> Serve:
    def serve_one(upstream_url: str, env: Mapping[str, str] | None = None) -> Regcache:
        server = start(upstream_url, env=dict(env or {}))
        started.append(server)
        return server

    return serve_one


def pull_cold_and_warm(
    server: Regcache, upstream: Upstream, name: str, workdir: Path, creds: Creds | None = None
) -> None:
    """skopeo pulls through ``server`` equal a direct pull; the warm one downloads no blob."""
    image = upstream.images[name]
    workdir = workdir / name.replace("/", "_")
    workdir.mkdir(parents=True)
    direct = f"docker://{upstream.registry.host}/{image.ref}"
    skopeo_pull(direct, workdir / "direct", creds=upstream.creds)
    for attempt in ("cold", "warm"):
        blob_gets = upstream.registry.blob_gets()
        skopeo_pull(f"docker://{server.host}/{image.ref}", workdir / attempt, creds=creds)
        assert_same_pulls(workdir / "direct", workdir / attempt)
    assert upstream.registry.blob_gets() == blob_gets, "a warm pull must not fetch blobs upstream"


def get_cached(server: Regcache, image: PushedImage, headers: Mapping[str, str]) -> list[Answer]:
    """GETs of ``image``'s manifest by tag and by digest, and of its last layer."""
    paths = [
        f"/v2/{image.name}/manifests/{image.tag}",
        f"/v2/{image.name}/manifests/{image.manifest_digest}",
        f"/v2/{image.name}/blobs/{image.blob_digests[-1]}",
    ]
    return [request(server.url, "GET", p, {**headers, "Accept": MANIFEST_ACCEPT}) for p in paths]


def assert_refused(answers: list[Answer], allowed: list[Answer], statuses: set[int]) -> None:
    """Each answer refuses with an OCI error, a challenge if 401, and none of the content."""
    for answer, content in zip(answers, allowed, strict=True):
        assert answer.status in statuses, answer.body[:300]
        assert answer.error_codes() == [REFUSAL_CODES[answer.status]]
        assert content.body not in answer.body
        if answer.status == 401:
            assert answer.headers["WWW-Authenticate"] == CHALLENGE


def test_basic_upstream_with_configured_credentials(
    basic: Upstream, serve: Serve, tmp_path: Path
) -> None:
    server = serve(basic.registry.url, configured(ALICE))
    pull_cold_and_warm(server, basic, "private/app", tmp_path)


def test_basic_upstream_with_client_credentials_passed_through(
    basic: Upstream, serve: Serve, tmp_path: Path
) -> None:
    server = serve(basic.registry.url)
    pull_cold_and_warm(server, basic, "private/app", tmp_path, creds=ALICE)


def test_basic_upstream_cached_content_needs_the_clients_own_credentials(
    basic: Upstream, serve: Serve, tmp_path: Path
) -> None:
    server = serve(basic.registry.url)
    image = basic.images["private/app"]
    skopeo_pull(f"docker://{server.host}/{image.ref}", tmp_path / "alice", creds=ALICE)

    refused = [
        get_cached(server, image, headers)
        for headers in ({}, basic_auth(WRONG), basic_auth(NOBODY))
    ]
    with pytest.raises(ProcessError, match=REFUSED):
        skopeo_pull(f"docker://{server.host}/{image.ref}", tmp_path / "anonymous")
    with pytest.raises(ProcessError, match=REFUSED):
        skopeo_pull(f"docker://{server.host}/{image.ref}", tmp_path / "wrong", creds=WRONG)

    blob_gets = basic.registry.blob_gets()
    allowed = get_cached(server, image, basic_auth(BOB))
    assert [answer.status for answer in allowed] == [200, 200, 200]
    skopeo_pull(f"docker://{server.host}/{image.ref}", tmp_path / "bob", creds=BOB)
    assert_same_pulls(tmp_path / "alice", tmp_path / "bob")
    assert basic.registry.blob_gets() == blob_gets
    for answers in refused:
        assert_refused(answers, allowed, {401})


def test_token_upstream_with_configured_credentials(
    token: Upstream, serve: Serve, tmp_path: Path
) -> None:
    server = serve(token.registry.url, configured(ALICE))
    for name in ("private/app", "public/app"):
        pull_cold_and_warm(server, token, name, tmp_path)


def test_token_upstream_with_client_credentials_passed_through(
    token: Upstream, serve: Serve, tmp_path: Path
) -> None:
    server = serve(token.registry.url)
    for name in ("private/app", "public/app"):
        pull_cold_and_warm(server, token, name, tmp_path, creds=ALICE)


def test_token_upstream_rights_apply_to_cached_content(
    token: Upstream, serve: Serve, tmp_path: Path
) -> None:
    server = serve(token.registry.url)
    public, private = token.images["public/app"], token.images["private/app"]
    skopeo_pull(f"docker://{server.host}/{public.ref}", tmp_path / "public")
    with pytest.raises(ProcessError, match=REFUSED):
        skopeo_pull(f"docker://{server.host}/{private.ref}", tmp_path / "anonymous")
    skopeo_pull(f"docker://{server.host}/{private.ref}", tmp_path / "alice", creds=ALICE)

    refused = [get_cached(server, private, headers) for headers in ({}, basic_auth(BOB))]
    wrong = get_cached(server, private, basic_auth(WRONG))
    with pytest.raises(ProcessError, match=REFUSED):
        skopeo_pull(f"docker://{server.host}/{private.ref}", tmp_path / "bob", creds=BOB)

    allowed = get_cached(server, private, basic_auth(ALICE))
    assert [answer.status for answer in allowed] == [200, 200, 200]
    for answers in refused:
        assert_refused(answers, allowed, {401, 403})
    assert_refused(wrong, allowed, {401})
    assert [answer.status for answer in get_cached(server, public, {})] == [200, 200, 200]


@pytest.mark.parametrize("mode", ["configured", "passthrough"])
def test_token_upstream_tokens_are_reused(
    mode: str, token: Upstream, tokens: TokenServer, serve: Serve, tmp_path: Path
) -> None:
    rounds = 8
    server = serve(token.registry.url, configured(ALICE) if mode == "configured" else {})
    creds = ALICE if mode == "passthrough" else None
    headers = basic_auth(ALICE) if creds else {}
    before = len(tokens.requests)
    for n in range(rounds):
        for image in token.images.values():
            skopeo_pull(f"docker://{server.host}/{image.ref}", tmp_path / f"{n}", creds=creds)
            # Tag lists are always fetched upstream, with a token.
            tags = request(server.url, "GET", f"/v2/{image.name}/tags/list", headers)
            assert (tags.status, tags.json()["tags"]) == (200, ["v1"])
    fetched = len(tokens.requests) - before
    scopes = len(token.images)
    identities = 2 if mode == "passthrough" else 1  # alice, and maybe anonymous to probe
    assert 1 <= fetched <= scopes * identities + 2, tokens.requests[before:]


@pytest.mark.parametrize("setting", ["REGCACHE_UPSTREAM_CA_BUNDLE", "REGCACHE_UPSTREAM_TLS_VERIFY"])
def test_tls_upstream_with_a_private_ca(
    setting: str, tls: tuple[Upstream, Path], serve: Serve, tmp_path: Path
) -> None:
    upstream, ca_pem = tls
    value = str(ca_pem) if setting == "REGCACHE_UPSTREAM_CA_BUNDLE" else "false"
    server = serve(upstream.registry.url, {setting: value})
    pull_cold_and_warm(server, upstream, "secure/app", tmp_path)


def test_tls_upstream_without_the_ca_is_a_clear_server_error(
    tls: tuple[Upstream, Path], serve: Serve, tmp_path: Path
) -> None:
    upstream, _ = tls
    server = serve(upstream.registry.url)
    image = upstream.images["secure/app"]
    for answer in get_cached(server, image, {}):
        assert 500 <= answer.status < 600
        assert answer.headers["Content-Type"].startswith("application/json")
        errors = answer.json()["errors"]
        assert errors, answer.body
        assert re.search(r"(?i)certificate|tls|ssl", errors[0]["message"]), errors
    with pytest.raises(ProcessError):
        skopeo_pull(f"docker://{server.host}/{image.ref}", tmp_path / "pulled")
    assert "Traceback" not in server.log()


def test_credentials_from_a_docker_config(basic: Upstream, serve: Serve, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    auth = base64.b64encode(f"{ALICE[0]}:{ALICE[1]}".encode()).decode()
    config.write_text(json.dumps({"auths": {basic.registry.host: {"auth": auth}}}))
    server = serve(basic.registry.url, {"REGCACHE_UPSTREAM_DOCKER_CONFIG": str(config)})
    pull_cold_and_warm(server, basic, "private/app", tmp_path)


@pytest.mark.parametrize("mode", ["configured", "passthrough"])
def test_blob_redirects_are_followed_without_credentials(
    mode: str, basic: Upstream, serve: Serve, tmp_path: Path
) -> None:
    image = basic.images["private/app"]
    skopeo_pull(f"docker://{basic.registry.host}/{image.ref}", tmp_path / "direct", creds=ALICE)
    with RedirectingRegistry(basic.registry.url) as front:
        server = serve(front.url, configured(ALICE) if mode == "configured" else {})
        creds = ALICE if mode == "passthrough" else None
        skopeo_pull(f"docker://{server.host}/{image.ref}", tmp_path / "pulled", creds=creds)
    assert_same_pulls(tmp_path / "direct", tmp_path / "pulled")
    assert set(image.blob_digests) <= set(front.redirected)
    assert front.cdn_requests
    assert [r.path for r in front.cdn_requests if "authorization" in r.headers] == []


def test_clients_must_log_in_to_a_cache_with_htpasswd(
    basic: Upstream, serve: Serve, tmp_path: Path
) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"{CAROL[0]}:{hash_password(CAROL[1])}\n")
    env = {"REGCACHE_AUTH_HTPASSWD": str(htpasswd), **configured(ALICE)}
    server = serve(basic.registry.url, env)
    image = basic.images["private/app"]
    for headers in ({}, basic_auth(ALICE), basic_auth((CAROL[0], WRONG[1]))):
        base = request(server.url, "GET", "/v2/", headers)
        assert base.status == 401
        assert base.headers["WWW-Authenticate"] == CHALLENGE
        for answer in get_cached(server, image, headers):
            assert answer.status == 401
            assert answer.headers["WWW-Authenticate"] == CHALLENGE
            assert answer.error_codes() == ["UNAUTHORIZED"]
    with pytest.raises(ProcessError, match=REFUSED):
        skopeo_pull(f"docker://{server.host}/{image.ref}", tmp_path / "anonymous")
    assert request(server.url, "GET", "/v2/", basic_auth(CAROL)).status == 200
    pull_cold_and_warm(server, basic, "private/app", tmp_path, creds=CAROL)


@pytest.mark.clients
@pytest.mark.parametrize("mode", ["configured", "passthrough"])
def test_ctr_pulls_a_private_image_through_a_token_upstream(
    mode: str, token: Upstream, serve: Serve, tmp_path: Path
) -> None:
    """containerd, with the cache's account or with its own credentials passed through."""
    server = serve(token.registry.url, configured(ALICE) if mode == "configured" else {})
    image = token.images["private/app"]
    user = None if mode == "configured" else f"{ALICE[0]}:{ALICE[1]}"
    with Containerd(tmp_path / "containerd") as containerd:
        containerd.pull(f"{server.host}/{image.ref}", user=user)
        assert set(image.blob_digests) <= containerd.content_digests()
        if mode == "passthrough":
            containerd.remove_all()
            with pytest.raises(ProcessError, match=REFUSED):
                containerd.pull(f"{server.host}/{image.ref}")  # no credentials: refused


def test_logs_hold_no_secrets(
    basic: Upstream,
    token: Upstream,
    tokens: TokenServer,
    serve: Serve,
    started: list[Regcache],
    tmp_path: Path,
) -> None:
    """Last: besides its own requests (logged at debug level), checks every log of this module.

    Its requests assert nothing, so that the check runs even where other tests fail.
    """
    debug = {"REGCACHE_LOG_LEVEL": "debug"}
    exposed: dict[Path, str] = {}  # what the admin listener shows: metrics, stats, images
    for upstream in (basic, token):
        image = upstream.images["private/app"]
        for env in ({**debug, **configured(ALICE)}, debug):
            server = serve(upstream.registry.url, env)
            for headers in (basic_auth(ALICE), basic_auth(WRONG), {}):
                request(server.url, "GET", "/v2/", headers)
                get_cached(server, image, headers)
            exposed[server.log_path] = "".join(
                request(server.admin_url, "GET", path).body.decode()
                for path in ("/metrics", "/api/stats", "/api/images")
            )

    secrets_by_kind: dict[str, list[str]] = {
        "password": [creds[1] for creds in EVERYONE],
        "basic credentials": [basic_auth(creds)["Authorization"].split()[1] for creds in EVERYONE],
        "token": tokens.issued,
        "token signature": [issued.rsplit(".", 1)[1] for issued in tokens.issued],
    }
    assert tokens.issued
    logs = {server.log_path: server.log() for server in started}
    assert all("regcache listening" in log for log in logs.values())
    leaks = [
        f"a {kind} in {where} of {path}"
        for where, texts in (("the log", logs), ("the admin API", exposed))
        for path, text in texts.items()
        for kind, values in secrets_by_kind.items()
        if any(value in text for value in values)
    ]
    assert exposed
    assert leaks == []
