"""One suite for every index backend: SQLite (one node) and Redis (shared by many)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from regcache.index import Index, SqliteIndex
from regcache.index.redis import IndexUnavailable, RedisIndex
from regcache.reference import Digest
from tests.support.redis_server import RedisServer


def digest_of(text: str) -> Digest:
    return Digest(hashlib.sha256(text.encode()).hexdigest())


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
async def index(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[Index]:
    made: Index
    if request.param == "sqlite":
        made = SqliteIndex(tmp_path / "index.sqlite3")
    else:
        made = RedisIndex(redis_server.url, prefix=f"test-{uuid.uuid4().hex}:")
    try:
        yield made
    finally:
        await made.close()


async def test_content_and_total(index: Index) -> None:
    a, b = digest_of("a"), digest_of("b")
    await index.add_content(a, 100, None, 1.0)
    await index.add_content(b, 50, "application/vnd.oci.image.manifest.v1+json", 2.0)
    await index.add_content(a, 100, None, 3.0)  # again: counted once
    assert await index.total() == 150
    entry = await index.content(b)
    assert entry is not None
    assert (entry.size, entry.media_type) == (50, "application/vnd.oci.image.manifest.v1+json")
    assert await index.digests() == {str(a), str(b)}
    assert await index.remove_content(a) is True
    assert await index.remove_content(a) is False, "only one remover is told it removed it"
    assert await index.total() == 50
    assert await index.content(a) is None


async def test_least_recently_used_follows_touches(index: Index) -> None:
    digests = [digest_of(str(n)) for n in range(3)]
    for n, digest in enumerate(digests):
        await index.add_content(digest, 10, None, float(n))
    index.touch(digests[0], 10.0)
    await index.flush_access()
    order = [entry.digest for entry in await index.least_recently_used()]
    assert order == [digests[1], digests[2], digests[0]]
    await index.remove_content(digests[1])
    index.touch(digests[1], 20.0)  # touching what is gone brings nothing back
    await index.flush_access()
    assert await index.content(digests[1]) is None
    assert await index.total() == 20


async def test_tags_pulls_and_removal(index: Index) -> None:
    first, second = digest_of("m1"), digest_of("m2")
    await index.set_tag("hub", "library/alpine", "3", first, 5.0)
    await index.set_tag("hub", "library/alpine", "latest", second, 6.0)
    await index.set_tag("ghcr", "library/alpine", "3", second, 7.0)
    tag = await index.tag("hub", "library/alpine", "3")
    assert tag is not None and (tag.digest, tag.fetched_at) == (first, 5.0)
    index.record_pull("hub", "library/alpine", "3", 8.0)
    index.record_pull("hub", "library/alpine", "3", 9.0)
    rows = {(r.upstream, r.tag): r for r in await index.tag_rows()}
    assert rows[("hub", "3")].pulls == 2
    assert rows[("hub", "3")].last_pulled == 9.0
    assert await index.remove_tags("hub", "library/alpine", "latest") == 1
    assert await index.remove_tags_to({str(second)}) == 1
    assert [(r.upstream, r.tag) for r in await index.tag_rows()] == [("hub", "3")]


async def test_links_and_open_repositories(index: Index) -> None:
    digest = digest_of("x")
    assert not await index.linked("hub", "a/b", digest)
    await index.link("hub", "a/b", digest)
    assert await index.linked("hub", "a/b", digest)
    assert not await index.linked("ghcr", "a/b", digest)
    await index.mark_open("hub", "a/b")
    assert await index.open_repositories("hub") == {"a/b"}
    assert await index.open_repositories("ghcr") == set()
    assert await index.is_open()


async def test_redis_down_is_a_clear_error(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as server:
        index = RedisIndex(server.url)
        await index.add_content(digest_of("a"), 1, None, 1.0)
        server.stop()
        assert not await index.is_open()
        with pytest.raises(IndexUnavailable) as caught:
            await index.content(digest_of("a"))
        assert caught.value.status == 503
        await index.close()
