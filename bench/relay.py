"""A TCP relay adding latency (and, with no shaped link, a rate limit): `python -m bench.relay`.

It listens on 127.0.0.1 and forwards each connection to `--connect`. With `--netns NAME` the
outgoing connections are made from inside that network namespace (a helper thread enters it),
so that the slow link's veth pair needs no address outside the namespaces made for it.

Each direction is a delay line: a chunk read at time t is written at t + delay, while reading
goes on, so the delay adds latency without capping throughput. `--rate-mbit` adds a token
bucket per direction, shared by every connection as a link would be.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

CLONE_NEWNET = 0x40000000
CHUNK = 64 * 1024
QUEUE_CHUNKS = 256  # at most 16 MiB in flight per direction of one connection
BURST = 64 * 1024


def enter_netns(name: str) -> None:
    """Move the calling thread into network namespace `name` (from `ip netns add`)."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({name}): {os.strerror(errno)}")
    finally:
        os.close(fd)


class TokenBucket:
    """`rate` bytes per second with a burst of `burst` bytes."""

    def __init__(self, rate: float, burst: int = BURST) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, amount: int) -> None:
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= min(amount, self.burst):
                    self.tokens -= amount
                    return
                await asyncio.sleep((min(amount, self.burst) - self.tokens) / self.rate)


async def pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    bucket: TokenBucket | None,
) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)

    async def produce() -> None:
        while True:
            try:
                data = await reader.read(CHUNK)
            except OSError:
                data = b""
            if bucket is not None and data:
                await bucket.take(len(data))
            await queue.put((time.monotonic() + delay, data))
            if not data:
                return

    producer = asyncio.create_task(produce())
    try:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await producer


class Relay:
    def __init__(
        self,
        target: tuple[str, int],
        delay: float,
        rate_bytes: float | None,
        netns: str | None,
    ) -> None:
        self.target = target
        self.delay = delay
        self.up_bucket = TokenBucket(rate_bytes) if rate_bytes else None
        self.down_bucket = TokenBucket(rate_bytes) if rate_bytes else None
        initializer: Callable[[], None] | None = (lambda: enter_netns(netns)) if netns else None
        self.connector = ThreadPoolExecutor(max_workers=1, initializer=initializer)

    def _connect(self) -> socket.socket:
        return socket.create_connection(self.target, timeout=10)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            sock = await loop.run_in_executor(self.connector, self._connect)
        except OSError as exc:
            print(f"relay: cannot connect to {self.target}: {exc}", file=sys.stderr)
            writer.close()
            return
        sock.setblocking(False)
        up_reader, up_writer = await asyncio.open_connection(sock=sock)
        up = asyncio.create_task(pipe(reader, up_writer, self.delay / 2, self.up_bucket))
        down = asyncio.create_task(pipe(up_reader, writer, self.delay / 2, self.down_bucket))
        try:
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
            if up.done() and not down.done() and up.exception() is None:
                await down  # the client half-closed: let the answer finish
        except (asyncio.CancelledError, OSError):
            pass
        finally:
            for task in (up, down):
                task.cancel()
            for task in (up, down):
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
            for stream in (writer, up_writer):
                stream.close()


async def serve(args: argparse.Namespace) -> None:
    host, port = args.connect.rsplit(":", 1)
    relay = Relay(
        (host, int(port)),
        args.delay_ms / 1000,
        args.rate_mbit * 1e6 / 8 if args.rate_mbit else None,
        args.netns,
    )
    server = await asyncio.start_server(relay.handle, "127.0.0.1", args.port)
    bound = server.sockets[0].getsockname()
    print(f"relay listening on 127.0.0.1:{bound[1]}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--connect", required=True, metavar="HOST:PORT")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="added round-trip time")
    parser.add_argument("--rate-mbit", type=float, default=0.0, help="0: no rate limit")
    parser.add_argument("--netns", help="make outgoing connections inside this namespace")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
