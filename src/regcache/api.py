"""The registry v2 pull API as an aiohttp application. It knows the cache, not where bytes live."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import IO

from aiohttp import web

from regcache.cache import CachedBlob, PullThroughCache, Source, StreamingBlob
from regcache.clientauth import Htpasswd
from regcache.download import DownloadFailed
from regcache.errors import (
    CLIENT_CHALLENGE,
    RegistryError,
    StorageUnavailable,
    Unauthorized,
    Unsupported,
    UpstreamUnavailable,
)
from regcache.mediatypes import BLOB_TYPE, parse_accept
from regcache.metrics import Metrics
from regcache.paths import Endpoint, Route, parse_path, v1_error
from regcache.ranges import ByteRange, parse_range
from regcache.reference import Digest
from regcache.routing import Router, Target
from regcache.storage import StoreFailed
from regcache.upstream import Credentials

log = logging.getLogger(__name__)

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
READ_METHODS = ("GET", "HEAD")
ROUTER_KEY: web.AppKey[Router] = web.AppKey("router", Router)
HTPASSWD_KEY: web.AppKey[Htpasswd | None] = web.AppKey("htpasswd")
METRICS_KEY: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
ROUTE_LABEL = "regcache.route"
SERVED_FROM_CACHE = (Source.HIT, Source.STALE)
CACHE_RESULTS = frozenset(Source)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(err: RegistryError) -> web.Response:
    return web.Response(
        status=err.status,
        body=err.body(),
        content_type="application/json",
        headers={**err.headers, **API_VERSION},
    )


@web.middleware
async def registry_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer carries the API version; every failure is an OCI error envelope."""
    try:
        response = await handler(request)
    except RegistryError as err:
        return error_response(err)
    except StoreFailed as exc:
        log.error("storage failed: %s", exc)
        return error_response(StorageUnavailable("the cache's storage is unavailable"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 405:
            return error_response(Unsupported("method not allowed"))
        generic = RegistryError(exc.reason, status=exc.status)
        generic.code = "NAME_UNKNOWN" if exc.status == 404 else "UNKNOWN"
        return error_response(generic)
    if not response.prepared:
        response.headers.update(API_VERSION)
    return response


@web.middleware
async def measured(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every answer by route and status, and the bytes sent by where they came from."""
    response = await handler(request)
    metrics = request.app[METRICS_KEY]
    route = request.get(ROUTE_LABEL, "other")
    metrics.child(metrics.requests, route, request.method, str(response.status)).inc()
    cache = response.headers.get("X-Cache")
    if cache in CACHE_RESULTS and response.status in (200, 206):
        metrics.child(metrics.responses, route, cache).inc()
        if request.method == "GET":
            source = "cache" if cache in SERVED_FROM_CACHE else "upstream"
            metrics.child(metrics.client_bytes, source).inc(response.content_length or 0)
    return response


def client_credentials(request: web.Request) -> Credentials | None:
    """The client's own credentials for the upstream (passthrough), when it may have any.

    With an htpasswd file the credentials are the cache's own, never sent upstream.
    """
    if request.app[HTPASSWD_KEY] is not None:
        return None
    return Credentials.from_basic_header(request.headers.get("Authorization"))


async def v2(request: web.Request) -> web.StreamResponse:
    htpasswd = request.app[HTPASSWD_KEY]
    if htpasswd is not None:
        await htpasswd.check(request.headers.get("Authorization"))
    route = parse_path(request.match_info.get("path", ""))
    request[ROUTE_LABEL] = route.endpoint.value
    if request.method not in READ_METHODS:
        raise Unsupported(
            "regcache is a read-only pull-through cache: push and delete are not supported",
            headers={"Allow": "GET, HEAD"},
        )
    if route.endpoint is Endpoint.BASE:
        return await base(request)
    handler = _HANDLERS.get(route.endpoint)
    if handler is None:
        raise Unsupported(f"the {route.endpoint} endpoint is not served by a cache", status=404)
    target = request.app[ROUTER_KEY].resolve(
        route.name, host=request.host, ns=request.query.get("ns")
    )
    response = await handler(request, route, target)
    if target.namespace and not response.prepared:
        response.headers["OCI-Namespace"] = target.namespace
    return response


async def v1(request: web.Request) -> web.StreamResponse:
    raise v1_error()


async def base(request: web.Request) -> web.StreamResponse:
    """200 when the client may pull; a Basic challenge when the upstream wants credentials.

    In passthrough mode a client without credentials is challenged whenever the upstream has
    auth at all, as the upstream itself would: docker and skopeo send the credentials they have
    only after such a challenge, and go on anonymously when they have none.
    """
    cache = request.app[ROUTER_KEY].base(request.host)
    if cache is None:
        return web.json_response({})
    client = client_credentials(request)
    try:
        await cache.upstream.ping(client)
    except UpstreamUnavailable:
        if client is not None:
            raise
    upstream = cache.upstream
    if (
        client is None
        and request.app[HTPASSWD_KEY] is None
        and upstream.settings.passthrough_auth
        and upstream.has_auth
    ):
        raise Unauthorized("authentication required", headers=CLIENT_CHALLENGE)
    return web.json_response({})


async def manifest(request: web.Request, route: Route, target: Target) -> web.StreamResponse:
    accepted = parse_accept(request.headers.getall("Accept", []))
    found = await target.cache.manifest(
        target.repository, route.reference, accepted, client_credentials(request)
    )
    headers = {
        "Content-Type": found.media_type,
        "Docker-Content-Digest": str(found.digest),
        "ETag": f'"{found.digest}"',
        "X-Cache": found.source,
    }
    if found.warning:
        headers["Warning"] = found.warning
    response = web.Response(body=found.body, headers=headers)
    return response


async def blob(request: web.Request, route: Route, target: Target) -> web.StreamResponse:
    cache = target.cache
    digest = Digest.parse(route.reference)
    client = client_credentials(request)
    if request.method == "HEAD":
        size = await cache.blob_size(target.repository, digest, client)
        response = web.StreamResponse(headers=_blob_headers(digest, "HEAD"))
        response.content_length = size
        return response
    found = await cache.blob(target.repository, digest, client)
    if isinstance(found, StreamingBlob):
        return await _send_streaming(request, found)
    if found.path is None and cache.content.redirect and request.headers.get("Range") is None:
        location = await cache.store.presigned_url(digest)
        if location is not None:  # the store serves the bytes
            return web.Response(status=307, headers={"Location": location, "X-Cache": "HIT"})
    async with cache.content.reading(digest):
        if found.path is None:
            return await _send_from_store(request, cache, found)
        with open(found.path, "rb") as file:  # noqa: ASYNC230  (opening a local file: no wait)
            return await _send_stored(request, file, found)


async def tags(request: web.Request, route: Route, target: Target) -> web.StreamResponse:
    query = {key: request.query[key] for key in ("n", "last") if key in request.query}
    body, headers = await target.cache.tags(target.repository, query, client_credentials(request))
    return web.Response(body=body, headers=headers)


RouteHandler = Callable[[web.Request, Route, Target], Awaitable[web.StreamResponse]]
_HANDLERS: dict[Endpoint, RouteHandler] = {
    Endpoint.MANIFEST: manifest,
    Endpoint.BLOB: blob,
    Endpoint.TAGS: tags,
}


def _blob_headers(digest: Digest, source: str) -> dict[str, str]:
    return {
        "Content-Type": BLOB_TYPE,
        "Docker-Content-Digest": str(digest),
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
        "X-Cache": source,
    }


async def _start(
    request: web.Request, digest: Digest, size: int | None, source: str
) -> tuple[web.StreamResponse, ByteRange]:
    """Headers for a blob body (whole, or the asked-for range); returns the span to send."""
    headers = _blob_headers(digest, source)
    span = parse_range(request.headers.get("Range"), size) if size is not None else None
    response = web.StreamResponse(status=206 if span else 200, headers=headers | API_VERSION)
    if span is not None and size is not None:
        response.headers["Content-Range"] = span.content_range(size)
    if size is not None:
        span = span or ByteRange(0, size)
        response.content_length = span.length
    else:
        response.headers.pop("Accept-Ranges")
    await response.prepare(request)
    return response, span or ByteRange(0, -1)


async def _send_stored(
    request: web.Request, file: IO[bytes], found: CachedBlob
) -> web.StreamResponse:
    response, span = await _start(request, found.digest, found.size, Source.HIT)
    if span.length > 0:
        await _sendfile(request, file, span.start, span.length)
    await response.write_eof()
    return response


async def _send_from_store(
    request: web.Request, cache: PullThroughCache, found: CachedBlob
) -> web.StreamResponse:
    """A stored blob without a local file (an object store): streamed through this node."""
    response, span = await _start(request, found.digest, found.size, Source.HIT)
    async for chunk in cache.store.open_range(found.digest, span.start, span.end):
        await response.write(chunk)
    await response.write_eof()
    return response


async def _send_streaming(request: web.Request, found: StreamingBlob) -> web.StreamResponse:
    download = found.download
    reader = id(request)
    try:
        with os.fdopen(download.open_reader(), "rb") as file:
            response, span = await _start(request, download.digest, download.size, found.source)
            position, end = span.start, span.end
            download.advanced(reader, position)
            try:
                while end < 0 or position < end:
                    available = await download.wait_readable(position)
                    if available == position:  # verified, and nothing more: the end
                        break
                    stop = available if end < 0 else min(available, end)
                    if position < download.on_disk:
                        stop = min(stop, download.on_disk)
                        await _sendfile(request, file, position, stop - position)
                    else:
                        data = download.read_spill(position, stop)
                        if not data:  # joined too late: those bytes are neither kept nor held
                            raise DownloadFailed("the bytes this client needs were not kept")
                        await response.write(data)
                        stop = position + len(data)
                    position = stop
                    download.advanced(reader, position)
            except DownloadFailed:
                _abort(request)
                return response
        await response.write_eof()
        return response
    finally:
        download.positions.pop(reader, None)
        download.release()


async def _sendfile(request: web.Request, file: IO[bytes], offset: int, count: int) -> None:
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("client went away")
    await asyncio.get_running_loop().sendfile(transport, file, offset, count)


def _abort(request: web.Request) -> None:
    """End the connection so that the client sees a broken transfer, never a complete body."""
    transport = request.transport
    if transport is not None:
        transport.abort()


def create_app(
    router: Router, metrics: Metrics, htpasswd: Htpasswd | None = None
) -> web.Application:
    app = web.Application(
        middlewares=[measured, registry_errors], handler_args={"max_field_size": 16384}
    )
    app[ROUTER_KEY] = router
    app[METRICS_KEY] = metrics
    app[HTPASSWD_KEY] = htpasswd
    app.router.add_route("*", "/v2", v2)
    app.router.add_route("*", "/v2/{path:.*}", v2)
    app.router.add_route("*", "/v1/{path:.*}", v1)
    return app
