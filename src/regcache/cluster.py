"""Coordination between the nodes of a cluster, in Redis: one download per blob, shared pins.

A node that misses a blob takes its lock (`SET NX` with an expiry, renewed while the download
runs, and a fencing number from `INCR`). The others wait until the blob is in the shared store,
or until the lock is gone (its holder died, or gave up), and then take it themselves. A reader
pins a blob in Redis so that no node's eviction deletes it under the reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from regcache.index.redis import IndexUnavailable
from regcache.reference import Digest

log = logging.getLogger(__name__)

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
PIN_TTL = 3600.0


@dataclass
class Lease:
    """A held blob lock; `fence` grows with every holder, so a stale holder can be told apart."""

    key: str
    value: str
    fence: int
    renewer: asyncio.Task[None] | None = field(default=None, repr=False)
    lost: bool = False


class Cluster:
    def __init__(
        self, url: str, prefix: str = "regcache:", *, lock_ttl: float = 30.0, poll: float = 0.2
    ) -> None:
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=5.0, socket_connect_timeout=5.0
        )
        self._prefix = prefix
        self.node = uuid.uuid4().hex[:12]
        self.lock_ttl = lock_ttl
        self.poll = poll
        self._renew = self._redis.register_script(RENEW)
        self._release = self._redis.register_script(RELEASE)

    async def close(self) -> None:
        await self._redis.aclose()

    async def _call(self, coroutine: Awaitable[Any]) -> Any:
        try:
            return await coroutine
        except RedisError as exc:
            raise IndexUnavailable(
                f"the cluster's Redis is unavailable: {type(exc).__name__}"
            ) from None

    # -- locks -----------------------------------------------------------------------------

    async def acquire(self, digest: Digest) -> Lease | None:
        key = f"{self._prefix}lock:{digest}"
        fence = int(await self._call(self._redis.incr(f"{self._prefix}fence:{digest}")))
        value = f"{self.node}:{fence}"
        ttl_ms = int(self.lock_ttl * 1000)
        if not await self._call(self._redis.set(key, value, nx=True, px=ttl_ms)):
            return None
        lease = Lease(key, value, fence)
        lease.renewer = asyncio.create_task(self._keep(lease))
        return lease

    async def _keep(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(self.lock_ttl / 3)
            try:
                renewed = await self._renew(
                    keys=[lease.key], args=[lease.value, int(self.lock_ttl * 1000)]
                )
            except RedisError:
                continue  # Redis is away: the lock may expire, and another node take over
            if not renewed:
                lease.lost = True
                log.warning("lost the lock on %s (fence %d)", lease.key, lease.fence)
                return

    async def release(self, lease: Lease) -> None:
        if lease.renewer is not None:
            lease.renewer.cancel()
        with contextlib.suppress(RedisError):
            await self._release(keys=[lease.key], args=[lease.value])

    async def locked(self, digest: Digest) -> bool:
        return bool(await self._call(self._redis.exists(f"{self._prefix}lock:{digest}")))

    # -- pins ------------------------------------------------------------------------------

    async def pin(self, digest: Digest) -> str:
        reader = uuid.uuid4().hex
        await self._call(
            self._redis.hset(f"{self._prefix}pin:{digest}", reader, time.time() + PIN_TTL)
        )
        return reader

    async def unpin(self, digest: Digest, reader: str) -> None:
        with contextlib.suppress(RedisError):
            await self._redis.hdel(f"{self._prefix}pin:{digest}", reader)

    async def pinned(self, digest: Digest) -> bool:
        readers = await self._call(self._redis.hvals(f"{self._prefix}pin:{digest}"))
        now = time.time()
        return any(float(expiry) > now for expiry in readers)

    async def healthy(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False
