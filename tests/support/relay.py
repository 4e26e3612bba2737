"""A relay in front of a real registry that injects the faults a real server will not produce.

It forwards every request unchanged and streams the answer back, except where a `Fault` says
to corrupt, cut, stall or refuse blob downloads. It runs on its own thread and event loop, so
that synchronous tests (which run skopeo, ctr, ...) can use it too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
HOP_HEADERS = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass
class Fault:
    """What to do to blob GETs; `times` bounds how many requests it applies to (None: all)."""

    flip_byte_at: int | None = None
    cut_after: int | None = None
    stall_after: int | None = None
    status: int | None = None
    retry_after: str = "30"
    hang: bool = False
    every_request: bool = False
    times: int | None = None
    applied: int = 0

    def active(self) -> bool:
        return self.times is None or self.applied < self.times


@dataclass
class BlobRequest:
    path: str
    range: str | None


@dataclass
class Relay:
    upstream: str
    fault: Fault = field(default_factory=Fault)
    blob_requests: list[BlobRequest] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    url: str = ""
    stalled: threading.Event = field(default_factory=threading.Event)
    _release: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def release_stall(self) -> None:
        assert self._loop is not None and self._release is not None
        self._loop.call_soon_threadsafe(self._release.set)

    def reset(self, fault: Fault | None = None) -> None:
        """A new fault (or none), with stalls released and a fresh stall event."""
        self.release_stall()
        self.fault = fault or Fault()
        self.stalled = threading.Event()
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._renew_release(), self._loop).result(10)

    async def _renew_release(self) -> None:
        self._release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        is_blob_get = request.method == "GET" and "/blobs/sha256:" in request.path
        self.requests.append(f"{request.method} {request.path}")
        targeted = is_blob_get or self.fault.every_request
        fault = self.fault if targeted and self.fault.active() else None
        if is_blob_get:
            self.blob_requests.append(BlobRequest(request.path, request.headers.get("Range")))
        if fault is not None:
            fault.applied += 1
            if fault.hang:
                self.stalled.set()
                assert self._release is not None
                await self._release.wait()
            if fault.status is not None:
                return web.json_response(
                    {"errors": [{"code": "TOOMANYREQUESTS", "message": "injected"}]},
                    status=fault.status,
                    headers={"Retry-After": fault.retry_after},
                )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        session: aiohttp.ClientSession = request.app[SESSION]
        async with session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read() or None,
            allow_redirects=False,
        ) as upstream:
            out_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS
            }
            response = web.StreamResponse(status=upstream.status, headers=out_headers)
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            if request.method == "HEAD":
                return response
            sent = 0
            async for chunk in upstream.content.iter_any():
                chunk = self._apply(fault, chunk, sent)
                if (
                    fault is not None
                    and fault.stall_after is not None
                    and sent + len(chunk) > fault.stall_after
                ):
                    keep = fault.stall_after - sent
                    await response.write(chunk[:keep])
                    self.stalled.set()
                    assert self._release is not None
                    await self._release.wait()
                    chunk, sent = chunk[keep:], sent + keep
                if (
                    fault is not None
                    and fault.cut_after is not None
                    and sent + len(chunk) >= fault.cut_after
                ):
                    await response.write(chunk[: fault.cut_after - sent])
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
            return response

    @staticmethod
    def _apply(fault: Fault | None, chunk: bytes, sent: int) -> bytes:
        if fault is None or fault.flip_byte_at is None:
            return chunk
        offset = fault.flip_byte_at - sent
        if 0 <= offset < len(chunk):
            flipped = bytearray(chunk)
            flipped[offset] ^= 0xFF
            return bytes(flipped)
        return chunk


@contextmanager
def running_relay(upstream: str) -> Iterator[Relay]:
    """A Relay listening on 127.0.0.1 (a free port), stopped on exit."""
    relay = Relay(upstream)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: asyncio.Event | None = None
    failure: list[BaseException] = []

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        relay._release = asyncio.Event()
        relay._loop = asyncio.get_running_loop()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", relay.handle)
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            app[SESSION] = session
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            relay.url = f"http://{host}:{port}"
            started.set()
            await stop.wait()
            relay._release.set()
            await runner.cleanup()

    def run() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:
            failure.append(exc)
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="fault-relay", daemon=True)
    thread.start()
    if not started.wait(30) or failure:
        raise RuntimeError(f"the relay did not start: {failure}")
    try:
        yield relay
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
