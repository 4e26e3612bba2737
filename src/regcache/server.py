"""Assembling the parts and running them: storage, index, upstreams, cache, the two listeners."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from regcache.accesslog import AccessLogger
from regcache.accesslog import log as access_log
from regcache.admin import Admin, create_admin_app
from regcache.api import create_app
from regcache.backends import open_backends
from regcache.cache import PullThroughCache, SharedContent
from regcache.clientauth import Htpasswd, read_htpasswd
from regcache.config import Settings
from regcache.index import Index
from regcache.metrics import Metrics
from regcache.routing import Router
from regcache.upstream import UpstreamClient

log = logging.getLogger(__name__)

ACCESS_FLUSH_INTERVAL = 5.0
SHUTDOWN_GRACE = 30.0
ADMIN_TOKEN_FILE = "admin.token"


@dataclass
class Running:
    router: Router
    content: SharedContent
    metrics: Metrics


@asynccontextmanager
async def running_caches(settings: Settings) -> AsyncIterator[Running]:
    """A cache per configured upstream over one shared store, routed; closed on exit."""
    metrics = Metrics()
    async with open_backends(settings) as backends:
        content = SharedContent(
            backends.store,
            backends.index,
            budget=settings.cache_size,
            metrics=metrics,
            cluster=backends.cluster,
        )
        content.redirect = settings.redirect
        async with _caches(settings, content, metrics) as running:
            yield running


@asynccontextmanager
async def _caches(
    settings: Settings, content: SharedContent, metrics: Metrics
) -> AsyncIterator[Running]:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=64, ttl_dns_cache=60)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        caches = []
        for upstream in settings.upstreams:
            if not upstream.tls_verify:
                log.warning("TLS verification of upstream %s is turned off", upstream.name)
            cache = PullThroughCache(
                content,
                UpstreamClient(upstream.name, upstream, session, metrics),
                freshness=settings.freshness(upstream),
                confirm_ttl=settings.confirm_ttl,
            )
            await cache.start()
            caches.append(cache)
        await content.recover()
        flusher = asyncio.create_task(_flush_access_times(content.index))
        try:
            yield Running(Router(caches, settings.default_upstream), content, metrics)
        finally:
            flusher.cancel()
            await content.close()


async def _flush_access_times(index: Index) -> None:
    while True:
        await asyncio.sleep(ACCESS_FLUSH_INTERVAL)
        await index.flush_access()


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


def admin_token(settings: Settings) -> str:
    """The configured token, else the one kept (made once, readable by root only) in the cache."""
    if settings.admin_token is not None:
        return settings.admin_token.reveal()
    path = settings.cache_dir / ADMIN_TOKEN_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    return token


async def _start_site(
    runner: web.AppRunner, host: str, port: int, context: ssl.SSLContext | None
) -> None:
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True)
    await site.start()


def _announce(runner: web.AppRunner, label: str, tls: bool) -> None:
    """Said once every listener is bound: whoever waits for it may connect."""
    scheme = "https" if tls else "http"
    for address in runner.addresses:
        host, port = address[:2]
        print(f"{label} listening on {scheme}://{host}:{port}", file=sys.stderr, flush=True)


async def serve(settings: Settings) -> None:
    async with running_caches(settings) as running:
        htpasswd = Htpasswd(read_htpasswd(settings.htpasswd)) if settings.htpasswd else None
        admin = Admin(running.router, running.content, running.metrics, admin_token(settings))
        admin_app = create_admin_app(admin)
        app = create_app(running.router, running.metrics, htpasswd)
        if settings.admin_public:
            app.add_subapp("/_regcache/", admin_app)
            app.router.add_get("/_regcache", _to_dashboard)
        runner = web.AppRunner(
            app,
            access_log=access_log,
            access_log_class=AccessLogger,
            shutdown_timeout=SHUTDOWN_GRACE,
        )
        runners = [runner]
        try:
            await _start_site(
                runner, settings.listen_host, settings.listen_port, tls_context(settings)
            )
            if settings.admin_host is not None and not settings.admin_public:
                admin_runner = web.AppRunner(admin_app, access_log=None)
                runners.append(admin_runner)
                await _start_site(admin_runner, settings.admin_host, settings.admin_port, None)
        except BaseException:
            for each in runners:
                await each.cleanup()
            raise
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)  # before anyone is told we are ready
        _announce(runner, "regcache", settings.tls)
        if len(runners) > 1:
            _announce(runners[1], "regcache admin", False)
        sampler = asyncio.create_task(admin.run_sampler())
        for upstream in settings.upstreams:
            default = " (default)" if upstream.name == settings.default_upstream else ""
            log.info("upstream %s: %s%s", upstream.name, upstream.url, default)
        log.info("cache %s, budget %d bytes", settings.cache_dir, settings.cache_size)
        try:
            await stop.wait()
            log.info("stopping: no new connections; running transfers may finish")
        finally:
            sampler.cancel()
            # Listening sockets close first; open requests get up to SHUTDOWN_GRACE seconds.
            for each in runners:
                await each.cleanup()


async def _to_dashboard(request: web.Request) -> web.StreamResponse:
    """The dashboard's URLs are relative: it needs the trailing slash."""
    raise web.HTTPFound("/_regcache/")
