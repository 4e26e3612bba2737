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
from regcache.cache import PullThroughCache
from regcache.clientauth import Htpasswd, read_htpasswd
from regcache.config import Settings
from regcache.index import Index
from regcache.storage import FilesystemStore
from regcache.upstream import UpstreamClient

log = logging.getLogger(__name__)

ACCESS_FLUSH_INTERVAL = 5.0
SHUTDOWN_GRACE = 30.0


@asynccontextmanager
async def running_cache(settings: Settings) -> AsyncIterator[PullThroughCache]:
    """A ready cache over the configured storage and upstream, closed on exit."""
    store = FilesystemStore(settings.cache_dir)
    index = Index(settings.cache_dir / "index.sqlite3")
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=64, ttl_dns_cache=60)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        upstream = UpstreamClient("default", settings.upstream, session)
        cache = PullThroughCache(
            store,
            index,
            upstream,
            budget=settings.cache_size,
            freshness=settings.freshness,
            confirm_ttl=settings.confirm_ttl,
        )
        await cache.recover()
        flusher = asyncio.create_task(_flush_access_times(index))
        try:
            yield cache
        finally:
            flusher.cancel()
            await cache.close()


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
    if not settings.upstream.tls_verify:
        log.warning("TLS verification of upstream %s is turned off", settings.upstream.url)
    async with running_cache(settings) as cache:
        htpasswd = Htpasswd(read_htpasswd(settings.htpasswd)) if settings.htpasswd else None
        app = create_app(cache, htpasswd)
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
        log.info(
            "upstream %s, cache %s (%d bytes budget)",
            settings.upstream.url,
            settings.cache_dir,
            settings.cache_size,
        )
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
