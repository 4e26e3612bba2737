"""A token server for the real registry's ``auth: token`` mode, served by a thread of the tests.

What distribution 2.8 checks (``registry/auth/token``): ``iss`` is the configured issuer, ``aud``
the configured service, ``nbf`` and ``exp`` (with 60 s of leeway), the signature, and that the
``access`` claim grants the action on the repository (else 401 with ``insufficient_scope``). It
finds the signing key from the JWT header: an ``x5c`` chain verified against ``rootcertbundle``,
or a ``kid`` that is the libtrust fingerprint of the key of a certificate in ``rootcertbundle``.
This server signs with RS256 and a ``kid``; its self-signed certificate is the whole bundle.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import fnmatch
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import BasicAuth, hdrs, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.support.process import Service

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


class ServerThread:
    """An aiohttp application served on 127.0.0.1:<free port> by its own thread and event loop."""

    def __init__(self, app: web.Application, name: str) -> None:
        self.app = app
        self.name = name
        self.url = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(READY_TIMEOUT):
            raise RuntimeError(f"{self.name} did not start within {READY_TIMEOUT:.0f}s")
        if self._failure is not None:
            raise RuntimeError(f"{self.name} did not start") from self._failure

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                self._loop.call_soon_threadsafe(self._stop.set)
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"{self.name} did not stop within {STOP_TIMEOUT:.0f}s")

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._failure = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            host, port = runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(key: rsa.RSAPublicKey) -> str:
    """libtrust's fingerprint: SHA-256 of the DER SubjectPublicKeyInfo, its first 240 bits in
    base32, as 12 groups of 4 characters joined by ':'."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def self_signed_certificate(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


@dataclass(frozen=True)
class TokenRequest:
    """One GET /token: who asked (None: anonymous or refused), for which scopes, and the answer."""

    user: str | None
    scopes: tuple[str, ...]
    status: int


class TokenServer(Service):
    """Issues RS256 JWTs for ``GET /token?service=...&scope=repository:NAME:ACTIONS``.

    ``users`` maps names to passwords (Basic auth; a wrong one gets 401). ``pull`` maps a user, or
    None for everyone including anonymous clients, to fnmatch patterns of the repositories they
    may pull ("private/*"). Users in ``push`` may also push where they may pull. Rights and users
    are plain attributes, read at every request. ``requests`` and ``issued`` record every request
    and every token issued.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        users: Mapping[str, str] | None = None,
        pull: Mapping[str | None, Sequence[str]] | None = None,
        push: Collection[str] = (),
        service: str = "regcache-test-registry",
        issuer: str = "regcache-test-token-issuer",
        lifetime: int = 300,
    ) -> None:
        self.users = dict(users or {})
        self.pull = {user: list(patterns) for user, patterns in (pull or {}).items()}
        self.push = set(push)
        self.service = service
        self.issuer = issuer
        self.lifetime = lifetime
        self.requests: list[TokenRequest] = []
        self.issued: list[str] = []
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = libtrust_key_id(self._key.public_key())
        workdir.mkdir(parents=True, exist_ok=True)
        self.rootcertbundle = workdir / "token-signer.pem"
        certificate = self_signed_certificate(self._key, issuer)
        self.rootcertbundle.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        app = web.Application()
        app.router.add_get("/token", self._handle)
        self._server = ServerThread(app, "token-server")

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def allowed_actions(
        self, user: str | None, repository: str, wanted: Sequence[str]
    ) -> list[str]:
        patterns = self.pull.get(None, []) + (self.pull.get(user, []) if user else [])
        if not any(fnmatch.fnmatchcase(repository, pattern) for pattern in patterns):
            return []
        granted = {"pull", "push"} if user in self.push else {"pull"}
        return [action for action in wanted if action in granted]

    def sign(self, claims: Mapping[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "kid": self._kid}
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    def _authenticate(self, header: str | None) -> tuple[bool, str | None]:
        """(accepted, user name or None for anonymous)."""
        if header is None:
            return True, None
        try:
            auth = BasicAuth.decode(header)
        except ValueError:
            return False, None
        return self.users.get(auth.login) == auth.password, auth.login

    async def _handle(self, request: web.Request) -> web.Response:
        scopes = tuple(request.query.getall("scope", []))
        accepted, user = self._authenticate(request.headers.get(hdrs.AUTHORIZATION))
        if not accepted:
            self.requests.append(TokenRequest(None, scopes, 401))
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED", "message": "bad user name or password"}]},
                status=401,
                headers={hdrs.WWW_AUTHENTICATE: 'Basic realm="regcache-test-token"'},
            )
        self.requests.append(TokenRequest(user, scopes, 200))
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": request.query.get("service", self.service),
            "exp": now + self.lifetime,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(12),
            "access": self._access(user, scopes),
        }
        token = self.sign(claims)
        self.issued.append(token)
        return web.json_response(
            {"token": token, "access_token": token, "expires_in": self.lifetime}
        )

    def _access(self, user: str | None, scopes: Sequence[str]) -> list[dict[str, Any]]:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            granted = self.allowed_actions(user, name, actions.split(","))
            if granted:
                access.append({"type": "repository", "name": name, "actions": granted})
        return access


def registry_token_config(server: TokenServer) -> dict[str, str]:
    """The ``auth.token`` section for ``Registry(token_auth=...)`` trusting ``server``.

    The server must be started first: the realm holds its port.
    """
    return {
        "realm": server.realm,
        "service": server.service,
        "issuer": server.issuer,
        "rootcertbundle": str(server.rootcertbundle),
    }
