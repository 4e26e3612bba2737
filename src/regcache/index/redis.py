"""The index in Redis, shared by every node of a cluster.

Keys (under a prefix): `content:<digest>` (hash: size, media_type, created, last_access),
`lru` (sorted set of digests by last access), `total` (bytes stored), `tag:<up>\\0<repo>\\0<tag>`
(hash: digest, fetched_at, pulls, last_pulled) listed in the set `tags`, `link:<up>\\0<repo>`
(set of digests) and `open:<up>` (set of repositories). Scripts keep `total` exact when nodes
add and remove the same digest at once, and tell exactly one of them that it removed it.
"""

from __future__ import annotations

import contextlib
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from regcache.errors import StorageUnavailable
from regcache.index.base import ContentEntry, TagEntry, TagRow
from regcache.reference import Digest

ADD_CONTENT = """
local old = redis.call('HGET', KEYS[1], 'size')
redis.call('HSET', KEYS[1], 'size', ARGV[1], 'media_type', ARGV[2], 'created', ARGV[3],
           'last_access', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return redis.call('INCRBY', KEYS[3], tonumber(ARGV[1]) - tonumber(old or 0))
"""
REMOVE_CONTENT = """
local old = redis.call('HGET', KEYS[1], 'size')
if not old then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DECRBY', KEYS[3], tonumber(old))
return 1
"""
TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'last_access', ARGV[1])
  redis.call('ZADD', KEYS[2], 'XX', ARGV[1], ARGV[2])
end
return 0
"""
SEP = "\0"


class IndexUnavailable(StorageUnavailable):
    """The shared index (Redis) could not be used."""


class RedisIndex:
    def __init__(self, url: str, prefix: str = "regcache:") -> None:
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=5.0, socket_connect_timeout=5.0
        )
        self._prefix = prefix
        self._add = self._redis.register_script(ADD_CONTENT)
        self._remove = self._redis.register_script(REMOVE_CONTENT)
        self._touch = self._redis.register_script(TOUCH)
        self._pending_access: dict[str, float] = {}
        self._pending_pulls: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._total = 0

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    async def _call(self, coroutine: Any) -> Any:
        try:
            return await coroutine
        except RedisError as exc:
            raise IndexUnavailable(
                f"the shared index is unavailable: {type(exc).__name__}"
            ) from None

    @property
    def total_size(self) -> int:
        return self._total

    async def total(self) -> int:
        self._total = int(await self._call(self._redis.get(self._key("total"))) or 0)
        return self._total

    async def close(self) -> None:
        with contextlib.suppress(IndexUnavailable):
            await self.flush_access()
        await self._redis.aclose()

    async def is_open(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    async def add_content(
        self, digest: Digest, size: int, media_type: str | None, now: float
    ) -> None:
        keys = [self._key("content", str(digest)), self._key("lru"), self._key("total")]
        self._total = int(
            await self._call(self._add(keys=keys, args=[size, media_type or "", now, str(digest)]))
        )

    async def content(self, digest: Digest) -> ContentEntry | None:
        row = await self._call(self._redis.hgetall(self._key("content", str(digest))))
        if not row:
            return None
        last_access = self._pending_access.get(str(digest), float(row["last_access"]))
        return ContentEntry(digest, int(row["size"]), row["media_type"] or None, last_access)

    async def remove_content(self, digest: Digest) -> bool:
        self._pending_access.pop(str(digest), None)
        keys = [self._key("content", str(digest)), self._key("lru"), self._key("total")]
        return bool(await self._call(self._remove(keys=keys, args=[str(digest)])))

    def touch(self, digest: Digest, now: float) -> None:
        self._pending_access[str(digest)] = now

    def record_pull(self, upstream: str, repository: str, tag: str, now: float) -> None:
        key = (upstream, repository, tag)
        count, _ = self._pending_pulls.get(key, (0, now))
        self._pending_pulls[key] = (count + 1, now)

    async def flush_access(self) -> None:
        if not self._pending_access and not self._pending_pulls:
            return
        access, self._pending_access = self._pending_access, {}
        pulls, self._pending_pulls = self._pending_pulls, {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for digest, when in access.items():
                keys = [self._key("content", digest), self._key("lru")]
                await self._touch(keys=keys, args=[when, digest], client=pipe)
            for (upstream, repository, tag), (count, when) in pulls.items():
                key = self._tag_key(upstream, repository, tag)
                pipe.hincrby(key, "pulls", count)
                pipe.hset(key, "last_pulled", when)
            await self._call(pipe.execute())
        # A touched digest may have been removed meanwhile: hset re-created a stub.
        stubs = [
            d for d in access if not await self._redis.hexists(self._key("content", d), "size")
        ]
        if stubs:
            await self._call(self._redis.delete(*(self._key("content", d) for d in stubs)))

    async def least_recently_used(self) -> list[ContentEntry]:
        await self.flush_access()
        digests = await self._call(self._redis.zrange(self._key("lru"), 0, -1))
        return [entry for entry in [await self.content(Digest.parse(d)) for d in digests] if entry]

    async def digests(self) -> set[str]:
        return set(await self._call(self._redis.zrange(self._key("lru"), 0, -1)))

    async def entries(self) -> list[ContentEntry]:
        return await self.least_recently_used()

    def _tag_key(self, upstream: str, repository: str, tag: str) -> str:
        return self._key("tag", SEP.join((upstream, repository, tag)))

    async def set_tag(
        self, upstream: str, repository: str, tag: str, digest: Digest, now: float
    ) -> None:
        key = self._tag_key(upstream, repository, tag)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"digest": str(digest), "fetched_at": now})
            pipe.sadd(self._key("tags"), SEP.join((upstream, repository, tag)))
            await self._call(pipe.execute())

    async def tag(self, upstream: str, repository: str, tag: str) -> TagEntry | None:
        row = await self._call(self._redis.hgetall(self._tag_key(upstream, repository, tag)))
        if not row or "digest" not in row:
            return None
        return TagEntry(Digest.parse(row["digest"]), float(row["fetched_at"]))

    async def tag_rows(self) -> list[TagRow]:
        await self.flush_access()
        rows = []
        for member in sorted(await self._call(self._redis.smembers(self._key("tags")))):
            upstream, repository, tag = member.split(SEP)
            row = await self._call(self._redis.hgetall(self._tag_key(upstream, repository, tag)))
            if row and "digest" in row:
                last = row.get("last_pulled")
                rows.append(
                    TagRow(
                        upstream,
                        repository,
                        tag,
                        Digest.parse(row["digest"]),
                        float(row["fetched_at"]),
                        int(row.get("pulls", 0)),
                        float(last) if last else None,
                    )
                )
        return rows

    async def remove_tags(self, upstream: str | None, repository: str, tag: str | None) -> int:
        removed = 0
        for row in await self.tag_rows():
            if row.repository != repository or upstream not in (None, row.upstream):
                continue
            if tag is not None and row.tag != tag:
                continue
            await self._forget_tag(row)
            removed += 1
        return removed

    async def remove_tags_to(self, digests: set[str]) -> int:
        gone = [row for row in await self.tag_rows() if str(row.digest) in digests]
        for row in gone:
            await self._forget_tag(row)
        return len(gone)

    async def _forget_tag(self, row: TagRow) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._tag_key(row.upstream, row.repository, row.tag))
            pipe.srem(self._key("tags"), SEP.join((row.upstream, row.repository, row.tag)))
            await self._call(pipe.execute())

    async def link(self, upstream: str, repository: str, digest: Digest) -> None:
        await self._call(
            self._redis.sadd(self._key("link", upstream + SEP + repository), str(digest))
        )

    async def linked(self, upstream: str, repository: str, digest: Digest) -> bool:
        key = self._key("link", upstream + SEP + repository)
        return bool(await self._call(self._redis.sismember(key, str(digest))))

    async def open_repositories(self, upstream: str) -> set[str]:
        return set(await self._call(self._redis.smembers(self._key("open", upstream))))

    async def mark_open(self, upstream: str, repository: str) -> None:
        await self._call(self._redis.sadd(self._key("open", upstream), repository))
