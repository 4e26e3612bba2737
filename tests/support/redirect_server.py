"""A registry front that sends blob downloads to a "CDN" by redirect, as registries on S3 do.

The front proxies every request to a real registry unchanged (credentials included). A blob GET
the registry answers with 200 becomes ``307 Location: <cdn>/blob/<digest>?sig=<one-off>``; the
front keeps the bytes it got, and the CDN, a second server, serves them to whoever follows the
redirect with a valid ``sig``, without any authentication, recording the headers of every request.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

from tests.support.process import Service

from .token_server import ServerThread

SESSION = web.AppKey("session", aiohttp.ClientSession)
HOP_HEADERS = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}
_BLOB_PATH = re.compile(r"^/v2/.+/blobs/(?P<digest>sha256:[a-f0-9]{64})$")


@dataclass(frozen=True)
class CdnRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Header names in lower case."""


class RedirectingRegistry(Service):
    """The front (``url``) for the registry at ``registry_url``, and its CDN (``cdn_url``).

    ``redirected`` lists the digest of every blob GET answered with a redirect; ``cdn_requests``
    every request the CDN got.
    """

    def __init__(self, registry_url: str) -> None:
        self.registry_url = registry_url
        self.redirected: list[str] = []
        self.cdn_requests: list[CdnRequest] = []
        self._blobs: dict[str, bytes] = {}
        self._signatures: set[tuple[str, str]] = set()
        front = web.Application()
        front.cleanup_ctx.append(_client_session)
        front.router.add_route("*", "/{tail:.*}", self._front)
        cdn = web.Application()
        cdn.router.add_route("*", "/blob/{digest}", self._cdn)
        self._front_server = ServerThread(front, "redirect-front")
        self._cdn_server = ServerThread(cdn, "redirect-cdn")

    @property
    def url(self) -> str:
        return self._front_server.url

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    @property
    def cdn_url(self) -> str:
        return self._cdn_server.url

    def start(self) -> None:
        self._cdn_server.start()
        try:
            self._front_server.start()
        except BaseException:
            self._cdn_server.stop()
            raise

    def stop(self) -> None:
        try:
            self._front_server.stop()
        finally:
            self._cdn_server.stop()

    async def _front(self, request: web.Request) -> web.StreamResponse:
        headers = _end_to_end(request.headers)
        blob = _BLOB_PATH.match(request.path) if request.method == "GET" else None
        if blob:
            headers.pop(hdrs.RANGE, None)
        async with request.app[SESSION].request(
            request.method,
            self.registry_url + request.path_qs,
            headers=headers,
            data=await request.read() or None,
            allow_redirects=False,
        ) as upstream:
            body = await upstream.read()
            if blob and upstream.status == 200:
                return self._redirect(blob["digest"], body)
            response = web.StreamResponse(
                status=upstream.status, headers=_end_to_end(upstream.headers)
            )
            is_head = request.method == "HEAD"
            response.content_length = upstream.content_length if is_head else len(body)
            await response.prepare(request)
            if not is_head:
                await response.write(body)
            await response.write_eof()
            return response

    def _redirect(self, digest: str, body: bytes) -> web.Response:
        signature = secrets.token_urlsafe(16)
        self._blobs[digest] = body
        self._signatures.add((digest, signature))
        self.redirected.append(digest)
        location = f"{self.cdn_url}/blob/{digest}?sig={signature}"
        return web.Response(status=307, headers={hdrs.LOCATION: location})

    async def _cdn(self, request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.cdn_requests.append(CdnRequest(request.method, request.path_qs, headers))
        digest = request.match_info["digest"]
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405)
        if (digest, request.query.get("sig", "")) not in self._signatures:
            return web.Response(status=403, text="bad or missing signature")
        return web.Response(body=self._blobs[digest], content_type="application/octet-stream")


def _end_to_end(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The headers without hop-by-hop ones; repeated ones (skopeo sends many Accept) are kept."""
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HOP_HEADERS)


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        app[SESSION] = session
        yield
