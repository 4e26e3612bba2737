"""The local disk cache in front of the object store: what it keeps, and within its budget."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from regcache.reference import Digest
from regcache.storage import FilesystemStore
from regcache.storage.s3 import S3Store
from regcache.storage.tiered import TieredStore


async def commit(store: TieredStore | S3Store, data: bytes) -> Digest:
    digest = Digest(hashlib.sha256(data).hexdigest())
    writer = store.new_writer(digest)
    writer.write(data)
    await writer.commit(digest)
    return digest


async def test_local_copies_of_downloads_and_whole_reads_within_a_budget(
    s3_store: S3Store, tmp_path: Path
) -> None:
    local = FilesystemStore(tmp_path / "local")
    tiered = TieredStore(s3_store, local, budget=3000)
    await tiered.recover()

    mine = await commit(tiered, os.urandom(1000))
    path = tiered.local_path(mine)
    assert path is not None and hashlib.sha256(path.read_bytes()).hexdigest() == mine.hex

    theirs_data = os.urandom(1500)
    theirs = await commit(s3_store, theirs_data)  # as another node would: only in the store
    assert tiered.local_path(theirs) is None
    partial = b"".join([chunk async for chunk in tiered.open_range(theirs, 0, 100)])
    assert partial == theirs_data[:100]
    assert tiered.local_path(theirs) is None, "a partial read is not kept"
    whole = b"".join([chunk async for chunk in tiered.open_range(theirs, 0, 1500)])
    assert whole == theirs_data
    assert tiered.local_path(theirs) is not None, "a whole, verified read is kept"

    third = await commit(tiered, os.urandom(1000))
    assert tiered.local_path(third) is not None
    kept = sum(p.stat().st_size for p in (tmp_path / "local" / "blobs").glob("sha256/*/*"))
    assert kept <= 3000
    assert tiered.local_path(mine) is None, "the least recently used local copy went"
    assert await tiered.stat(mine) is not None, "it is still in the store"

    await tiered.delete(third)
    assert tiered.local_path(third) is None and await tiered.stat(third) is None
