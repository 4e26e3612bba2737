"""Assembling the parts and running them: storage, index, upstream client, cache, HTTP listener."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from regcache.accesslog import AccessLogger
from regcache.accesslog import log as access_log
from regcache.api import create_app
from regcache.cache import PullThroughCache, SharedContent
from regcache.clientauth import Htpasswd, read_htpasswd
from regcache.config import Settings
from regcache.index import Index
from regcache.routing import Router
from regcache.storage import FilesystemStore
from regcache.upstream import UpstreamClient

log = logging.getLogger(__name__)

ACCESS_FLUSH_INTERVAL = 5.0
SHUTDOWN_GRACE = 30.0


@asynccontextmanager
async def running_caches(settings: Settings) -> AsyncIterator[Router]:
    """A cache per configured upstream over one shared store, routed; closed on exit."""
    store = FilesystemStore(settings.cache_dir)
    index = Index(settings.cache_dir / "index.sqlite3")
    content = SharedContent(store, index, budget=settings.cache_size)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=64, ttl_dns_cache=60)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        caches = []
        for upstream in settings.upstreams:
            if not upstream.tls_verify:
                log.warning("TLS verification of upstream %s is turned off", upstream.name)
            cache = PullThroughCache(
                content,
                UpstreamClient(upstream.name, upstream, session),
                freshness=settings.freshness(upstream),
                confirm_ttl=settings.confirm_ttl,
            )
            cache.start()
            caches.append(cache)
        await content.recover()
        flusher = asyncio.create_task(_flush_access_times(index))
        try:
            yield Router(caches, settings.default_upstream)
        finally:
            flusher.cancel()
            await content.close()


async def _flush_access_times(index: Index) -> None:
    while True:
        await asyncio.sleep(ACCESS_FLUSH_INTERVAL)
        index.flush_access()


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


async def serve(settings: Settings) -> None:
    async with running_caches(settings) as router:
        htpasswd = Htpasswd(read_htpasswd(settings.htpasswd)) if settings.htpasswd else None
        app = create_app(router, htpasswd)
        runner = web.AppRunner(
            app,
            access_log=access_log,
            access_log_class=AccessLogger,
            shutdown_timeout=SHUTDOWN_GRACE,
        )
        await runner.setup()
        site = web.TCPSite(
            runner,
            settings.listen_host,
            settings.listen_port,
            ssl_context=tls_context(settings),
            reuse_address=True,
        )
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        scheme = "https" if settings.tls else "http"
        for address in runner.addresses:
            host, port = address[:2]
            print(f"regcache listening on {scheme}://{host}:{port}", file=sys.stderr, flush=True)
        for upstream in settings.upstreams:
            default = " (default)" if upstream.name == settings.default_upstream else ""
            log.info("upstream %s: %s%s", upstream.name, upstream.url, default)
        log.info("cache %s, budget %d bytes", settings.cache_dir, settings.cache_size)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
