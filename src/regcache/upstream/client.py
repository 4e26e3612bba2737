"""One upstream registry: its auth flow, redirects, and its answers turned into regcache's types.

Third-party exceptions stop here: callers see RegistryError subclasses only.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import math
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from regcache.config import UpstreamSettings
from regcache.errors import (
    CLIENT_CHALLENGE,
    BlobUnknown,
    Denied,
    ManifestUnknown,
    NameUnknown,
    RegistryError,
    TooManyRequests,
    Unauthorized,
    UpstreamBadResponse,
    UpstreamUnavailable,
    from_upstream,
)
from regcache.mediatypes import sniff_media_type
from regcache.metrics import Metrics
from regcache.reference import Digest
from regcache.upstream.challenge import Challenge, parse_challenge
from regcache.upstream.credentials import Credentials
from regcache.upstream.dockerconfig import credentials_from_docker_config
from regcache.upstream.tokens import TokenCache

log = logging.getLogger(__name__)

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
MAX_REDIRECTS = 5
PING_MEMORY = 60.0
MAX_RETRY_AFTER = 86400.0
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class ManifestHead:
    digest: Digest | None
    media_type: str
    size: int


@dataclass(frozen=True)
class ManifestResponse:
    body: bytes
    media_type: str
    digest: Digest


class BlobResponse:
    """An open upstream blob body; `offset` is where it starts, `size` the whole blob's size."""

    def __init__(self, response: aiohttp.ClientResponse, offset: int, size: int | None) -> None:
        self._response = response
        self.offset = offset
        self.size = size

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"upstream transfer broke: {type(exc).__name__}") from None

    def release(self) -> None:
        self._response.release()


def retry_after_seconds(header: str | None, default: float = 60.0) -> float:
    """Retry-After as seconds from now: delay-seconds or an HTTP date; bounded to a day."""
    if not header:
        return default
    header = header.strip()
    if header.isdigit():
        return min(float(header), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return default
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER)


def configured_credentials(settings: UpstreamSettings) -> Credentials | None:
    if settings.username is not None and settings.password is not None:
        return Credentials(settings.username, settings.password.reveal())
    if settings.docker_config is not None:
        return credentials_from_docker_config(settings.docker_config, settings.url)
    return None


def ssl_context(settings: UpstreamSettings) -> ssl.SSLContext | bool:
    if not settings.tls_verify:
        return False
    if settings.ca_bundle is not None:
        return ssl.create_default_context(cafile=str(settings.ca_bundle))
    return True


class UpstreamClient:
    def __init__(
        self,
        name: str,
        settings: UpstreamSettings,
        session: aiohttp.ClientSession,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self.metrics = metrics or Metrics()
        self.last_error: str | None = None
        self.settings = settings
        self.base_url = settings.url
        self._session = session
        self._ssl = ssl_context(settings)
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=settings.timeout,
            sock_connect=settings.timeout,
            sock_read=settings.timeout,
        )
        self._configured = configured_credentials(settings)
        self._challenge: Challenge | None = None
        self._ping_ok_until = 0.0
        self._limited_until = 0.0
        self.tokens = TokenCache(
            session, self._timeout, self.metrics.token_fetches.labels(name).inc
        )

    def credentials_for(self, client: Credentials | None) -> Credentials | None:
        """Who regcache is upstream: the client in passthrough mode, else the configured account."""
        if client is not None and self.settings.passthrough_auth:
            return client
        return self._configured

    @property
    def has_auth(self) -> bool:
        """Whether the upstream has asked for auth of any kind (a Basic or Bearer challenge)."""
        return self._challenge is not None

    async def ping(self, client: Credentials | None) -> None:
        """Check that the upstream accepts this client; the default identity's OK is remembered."""
        remembered = client is None or not self.settings.passthrough_auth
        if remembered and self._ping_ok_until > time.monotonic():
            return
        async with await self._send("GET", "/v2/", client, scope="") as resp:
            await self._raise_for(resp)
        if remembered:
            self._ping_ok_until = time.monotonic() + PING_MEMORY

    async def head_manifest(
        self, repository: str, reference: str, accept: str, client: Credentials | None
    ) -> ManifestHead:
        path = f"/v2/{repository}/manifests/{reference}"
        async with await self._send(
            "HEAD", path, client, scope=_pull(repository), headers={"Accept": accept}
        ) as resp:
            await self._raise_for(resp)
            header = resp.headers.get("Docker-Content-Digest")
            digest = _parse_digest(header) if header else None
            media_type = _media_type(resp.headers.get("Content-Type", ""))
            return ManifestHead(digest, media_type, int(resp.headers.get("Content-Length", 0)))

    async def get_manifest(
        self, repository: str, reference: str, accept: str, client: Credentials | None
    ) -> ManifestResponse:
        path = f"/v2/{repository}/manifests/{reference}"
        async with await self._send(
            "GET", path, client, scope=_pull(repository), headers={"Accept": accept}
        ) as resp:
            await self._raise_for(resp)
            body = await self._read_limited(resp, MAX_MANIFEST_SIZE)
            self.metrics.upstream_bytes.labels(self.name).inc(len(body))
            digest = Digest(hashlib.sha256(body).hexdigest())
            header = resp.headers.get("Docker-Content-Digest")
            if header and _parse_digest(header) != digest:
                raise UpstreamBadResponse("the upstream's manifest does not match its digest")
            media_type = _media_type(resp.headers.get("Content-Type", ""))
            if media_type in ("", "application/json", "text/plain"):
                media_type = sniff_media_type(body) or media_type
            return ManifestResponse(body, media_type, digest)

    async def head_blob(
        self, repository: str, digest: Digest, client: Credentials | None
    ) -> int | None:
        path = f"/v2/{repository}/blobs/{digest}"
        resp = await self._follow(
            await self._send("HEAD", path, client, scope=_pull(repository)), "HEAD"
        )
        async with resp:
            await self._raise_for(resp)
            length = resp.headers.get("Content-Length")
            return int(length) if length and length.isdigit() else None

    async def open_blob(
        self, repository: str, digest: Digest, client: Credentials | None, offset: int = 0
    ) -> BlobResponse:
        """Start a blob download at `offset`; the caller must `release()` the response."""
        path = f"/v2/{repository}/blobs/{digest}"
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = await self._follow(
            await self._send("GET", path, client, scope=_pull(repository), headers=headers), "GET"
        )
        try:
            await self._raise_for(resp)
            return _blob_response(resp, offset)
        except BaseException:
            resp.release()
            raise

    async def tags_list(
        self, repository: str, query: Mapping[str, str], client: Credentials | None
    ) -> tuple[bytes, dict[str, str]]:
        path = f"/v2/{repository}/tags/list"
        async with await self._send(
            "GET", path, client, scope=_pull(repository), params=dict(query)
        ) as resp:
            await self._raise_for(resp)
            body = await self._read_limited(resp, MAX_MANIFEST_SIZE)
            headers = {"Content-Type": resp.headers.get("Content-Type", "application/json")}
            if "Link" in resp.headers:
                headers["Link"] = resp.headers["Link"]
            return body, headers

    async def _send(
        self,
        method: str,
        path: str,
        client: Credentials | None,
        *,
        scope: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """A request with the upstream's auth flow: answer a 401 challenge once, then give up."""
        self._check_rate_limit()
        credentials = self.credentials_for(client)
        url = self.base_url + path
        auth = await self._authorization(scope, credentials)
        resp = await self._request(method, url, {**(headers or {}), **auth}, params)
        if resp.status != 401:
            return resp
        challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            return resp
        if challenge.scheme == "basic" and credentials is None:
            return resp
        resp.release()
        if self._challenge is not None and self._challenge.scheme == "bearer":
            self.tokens.forget(self._challenge, scope, credentials)
        self._challenge = challenge
        auth = await self._authorization(challenge.params.get("scope", scope), credentials)
        return await self._request(method, url, {**(headers or {}), **auth}, params)

    def _check_rate_limit(self) -> None:
        """While the upstream's Retry-After runs, nothing is sent to it."""
        remaining = self._limited_until - time.monotonic()
        if remaining > 0:
            raise TooManyRequests(
                "the upstream's rate limit was reached",
                headers={"Retry-After": str(math.ceil(remaining))},
            )

    @property
    def rate_limited_for(self) -> float:
        return max(self._limited_until - time.monotonic(), 0.0)

    async def _authorization(self, scope: str, credentials: Credentials | None) -> dict[str, str]:
        challenge = self._challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            return {"Authorization": credentials.basic_header()} if credentials else {}
        token = await self.tokens.token(challenge, scope, credentials)
        return {"Authorization": f"Bearer {token}"}

    async def _request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        began = time.monotonic()
        try:
            response = await self._session.request(
                method,
                url,
                headers=dict(headers),
                params=params,
                allow_redirects=False,
                ssl=self._ssl,
                timeout=self._timeout,
                auto_decompress=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.last_error = f"unreachable: {_describe(exc)}"
            self.metrics.upstream_requests.labels(self.name, "error").inc()
            raise UpstreamUnavailable(f"upstream {self.name} {self.last_error}") from None
        self.metrics.upstream_latency.labels(self.name).observe(time.monotonic() - began)
        self.metrics.upstream_requests.labels(self.name, f"{response.status // 100}xx").inc()
        self.last_error = f"answered {response.status}" if response.status >= 500 else None
        return response

    async def _follow(self, resp: aiohttp.ClientResponse, method: str) -> aiohttp.ClientResponse:
        """Follow blob redirects (CDNs, signed URLs) here; credentials never go to another host."""
        origin = _origin(str(resp.url))
        for _ in range(MAX_REDIRECTS):
            if resp.status not in REDIRECTS or "Location" not in resp.headers:
                return resp
            target = urljoin(str(resp.url), resp.headers["Location"])
            resp.release()
            headers: dict[str, str] = {}
            if _origin(target) == origin:
                headers = dict(resp.request_info.headers)
                headers.pop("Host", None)
            resp = await self._request(method, target, headers)
        resp.release()
        raise UpstreamBadResponse("the upstream redirected too many times")

    async def _raise_for(self, resp: aiohttp.ClientResponse) -> None:
        if 200 <= resp.status < 300:
            return
        body = b"" if resp.method == "HEAD" else await self._read_limited(resp, 64 * 1024)
        if resp.status == 401:
            raise Unauthorized("authentication required", headers=CLIENT_CHALLENGE)
        if resp.status == 403:
            raise Denied("the upstream denied access")
        if resp.status == 429:
            wait = retry_after_seconds(resp.headers.get("Retry-After"))
            self._limited_until = time.monotonic() + wait
            log.warning("upstream %s rate limit reached: not asking it for %d s", self.name, wait)
            self.metrics.rate_limited.labels(self.name).inc()
            self._check_rate_limit()
        if resp.status >= 500:
            raise UpstreamBadResponse(f"upstream {self.name} answered {resp.status}", status=502)
        if resp.status == 404 and not body:
            raise _missing(resp.url.path)("not found upstream")
        raise from_upstream(resp.status, body, {})

    async def _read_limited(self, resp: aiohttp.ClientResponse, limit: int) -> bytes:
        try:
            body = await resp.content.read(limit + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"upstream transfer broke: {_describe(exc)}") from None
        if len(body) > limit:
            raise UpstreamBadResponse(f"upstream response larger than {limit} bytes")
        return body


def _blob_response(resp: aiohttp.ClientResponse, offset: int) -> BlobResponse:
    length = resp.content_length
    if resp.status == 206:
        start, total = _content_range(resp.headers.get("Content-Range", ""))
        if start != offset:
            raise UpstreamBadResponse("the upstream answered another range than asked")
        return BlobResponse(resp, start, total)
    # 200: the whole blob, whatever range was asked for.
    return BlobResponse(resp, 0, length)


def _content_range(header: str) -> tuple[int, int | None]:
    try:
        unit, _, spec = header.partition(" ")
        span, _, total = spec.partition("/")
        start = int(span.split("-", 1)[0])
        if unit != "bytes":
            raise ValueError(unit)
        return start, None if total == "*" else int(total)
    except ValueError:
        raise UpstreamBadResponse("the upstream sent an unreadable Content-Range") from None


def _missing(path: str) -> type[RegistryError]:
    """The error a registry would have sent for a 404 without a body (as on HEAD)."""
    if "/manifests/" in path:
        return ManifestUnknown
    if "/blobs/" in path:
        return BlobUnknown
    return NameUnknown


def _parse_digest(header: str) -> Digest | None:
    try:
        return Digest.parse(header.strip())
    except RegistryError:
        return None


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip()


def _pull(repository: str) -> str:
    return f"repository:{repository}:pull"


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def _describe(exc: BaseException) -> str:
    text: Any = str(exc) or type(exc).__name__
    return str(text)[:200]
