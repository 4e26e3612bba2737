"""The admin listener: health, metrics, the dashboard and its stats, and the operator's actions.

Reading (health, metrics, stats, the image list, the dashboard) needs no token; acting
(rm, purge, gc, verify, prefetch) needs `Authorization: Bearer <admin token>`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from regcache import __version__, catalog
from regcache import web as dashboard
from regcache.cache import SharedContent
from regcache.metrics import Metrics
from regcache.prefetch import prefetch
from regcache.routing import Router

SAMPLE_INTERVAL = 5.0
HISTORY_LENGTH = 720  # an hour of samples
TOP_IMAGES = 10  # by pulls, and by size: the page shows a table of each


class Admin:
    def __init__(
        self, router: Router, content: SharedContent, metrics: Metrics, token: str
    ) -> None:
        self.router = router
        self.content = content
        self.metrics = metrics
        self.token = token
        self.started = time.time()
        self.history: deque[dict[str, float]] = deque(maxlen=HISTORY_LENGTH)

    # -- numbers ---------------------------------------------------------------------------

    def results(self) -> dict[str, int]:
        total = {"hits": 0, "misses": 0, "coalesced": 0, "stale": 0}
        names = {"HIT": "hits", "MISS": "misses", "COALESCED": "coalesced", "STALE": "stale"}
        for kind in ("manifest", "blob"):
            for source, name in names.items():
                total[name] += int(
                    self.metrics.value("regcache_responses_total", {"kind": kind, "cache": source})
                )
        return total

    def sample(self) -> dict[str, float]:
        results = self.results()
        served = sum(results.values())
        return {
            "time": time.time(),
            "hit_ratio": round(results["hits"] / served, 4) if served else 0.0,
            "bytes_saved": self._client_bytes("cache"),
            "bytes_from_upstream": self._client_bytes("upstream"),
        }

    def _client_bytes(self, source: str) -> float:
        return self.metrics.value("regcache_client_bytes_total", {"source": source})

    async def stats(self) -> dict[str, Any]:
        index = self.content.index
        entries = await index.entries()
        manifests = sum(1 for e in entries if e.media_type)
        current = self.sample()
        images = await catalog.list_images(self.content)
        by_pulls = sorted(images, key=lambda row: (-row.pulls, -row.size))[:TOP_IMAGES]
        by_size = sorted(images, key=lambda row: -row.size)[:TOP_IMAGES]
        top = by_pulls + [row for row in by_size if row not in by_pulls]
        return {
            "version": __version__,
            "uptime_seconds": round(time.time() - self.started, 1),
            "cache": {
                "size_bytes": index.total_size,
                "budget_bytes": self.content.evictor.budget,
                "blobs": len(entries) - manifests,
                "manifests": manifests,
            },
            "requests": self.results(),
            "hit_ratio": current["hit_ratio"],
            "bytes_served": {
                "cache": int(current["bytes_saved"]),
                "upstream": int(current["bytes_from_upstream"]),
            },
            "bytes_saved": int(current["bytes_saved"]),
            "downloads": [
                {
                    "digest": str(d.digest),
                    "upstream": d.upstream,
                    "repository": d.repository,
                    "size": d.size,
                    "received": d.written,
                    "readers": d.readers,
                }
                for d in self.content.downloads.values()
            ],
            "upstreams": [self._upstream(cache.upstream) for cache in self.router.caches],
            "top_images": [row.to_json() for row in top],
            "history": list(self.history),
        }

    def _upstream(self, upstream: Any) -> dict[str, Any]:
        requests = sum(
            self.metrics.value(
                "regcache_upstream_requests_total", {"upstream": upstream.name, "outcome": o}
            )
            for o in ("2xx", "3xx", "4xx", "5xx", "error")
        )
        default = self.router.default
        return {
            "name": upstream.name,
            "url": upstream.settings.url,
            "default": default is not None and default.upstream is upstream,
            "healthy": upstream.last_error is None,
            "last_error": upstream.last_error,
            "rate_limited_for": round(upstream.rate_limited_for, 1),
            "requests": int(requests),
            "bytes": int(
                self.metrics.value("regcache_upstream_bytes_total", {"upstream": upstream.name})
            ),
        }

    async def run_sampler(self) -> None:
        while True:
            self.history.append(self.sample())
            await asyncio.sleep(SAMPLE_INTERVAL)

    # -- handlers --------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        checks = {
            "storage": await self.content.store.writable(),
            "index": await self.content.index.is_open(),
        }
        status = 200 if all(checks.values()) else 503
        return web.json_response({"ready": status == 200, "checks": checks}, status=status)

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8")

    async def stats_page(self, request: web.Request) -> web.Response:
        return web.json_response(await self.stats())

    async def images(self, request: web.Request) -> web.Response:
        rows = await catalog.list_images(self.content)
        return web.json_response([row.to_json() for row in rows])

    async def rm(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        repository = body.get("repository")
        if not isinstance(repository, str) or not repository:
            raise web.HTTPBadRequest(text="a repository is required")
        result = await catalog.remove(
            self.content, repository, body.get("tag"), body.get("upstream")
        )
        return web.json_response(result.to_json())

    async def purge(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        older_than = body.get("older_than")
        if not isinstance(older_than, int | float):
            raise web.HTTPBadRequest(text="older_than (a Unix time) is required")
        return web.json_response((await catalog.purge(self.content, older_than)).to_json())

    async def gc(self, request: web.Request) -> web.Response:
        return web.json_response((await catalog.collect_garbage(self.content)).to_json())

    async def verify(self, request: web.Request) -> web.StreamResponse:
        return await _ndjson(request, catalog.verify(self.content))

    async def prefetch(self, request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        images = body.get("images")
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            raise web.HTTPBadRequest(text="images must be a list of references")
        return await _ndjson(request, prefetch(self.router, images))


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="the body must be JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    return body


async def _ndjson(
    request: web.Request, events: AsyncIterator[dict[str, object]]
) -> web.StreamResponse:
    """Stream events as JSON lines, so that the command line can show progress."""
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    async for event in events:
        await response.write(json.dumps(event).encode() + b"\n")
    await response.write_eof()
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _token_required(admin: Admin) -> Callable[..., Any]:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST":
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given, admin.token):
                raise web.HTTPUnauthorized(
                    text="the admin token is required", headers={"WWW-Authenticate": "Bearer"}
                )
        return await handler(request)

    return check


def create_admin_app(admin: Admin) -> web.Application:
    app = web.Application(middlewares=[_token_required(admin)])
    app.router.add_get("/healthz", admin.healthz)
    app.router.add_get("/readyz", admin.readyz)
    app.router.add_get("/metrics", admin.metrics_page)
    app.router.add_get("/api/stats", admin.stats_page)
    app.router.add_get("/api/images", admin.images)
    app.router.add_post("/api/rm", admin.rm)
    app.router.add_post("/api/purge", admin.purge)
    app.router.add_post("/api/gc", admin.gc)
    app.router.add_post("/api/verify", admin.verify)
    app.router.add_post("/api/prefetch", admin.prefetch)
    dashboard.add_routes(app)
    return app
