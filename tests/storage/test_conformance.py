"""What every storage backend must do, run against each of them (see conftest.py)."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest

from regcache.reference import Digest
from regcache.storage import BlobStore, BlobWriter, DigestMismatch, StoredBlob, StoreFailed
from tests.storage.conftest import Backend

MIB = 1024 * 1024
# Sizes on both sides of the S3 backend's part size (8 MiB): one request, or a multipart upload.
SIZES = [1000, 9 * MIB + 5]


def content(size: int, seed: int = 0) -> tuple[bytes, Digest]:
    data = random.Random(seed).randbytes(size)
    return data, Digest(hashlib.sha256(data).hexdigest())


def write_in_chunks(writer: BlobWriter, data: bytes, seed: int = 0) -> None:
    """Write `data` in uneven chunks, from a few bytes to 3 MiB, as an upstream sends it."""
    chunks = random.Random(seed)
    position = 0
    while position < len(data):
        length = chunks.choice([1, 1000, 65536, 3 * MIB - 7, chunks.randrange(1, 3 * MIB)])
        writer.write(data[position : position + length])
        position += length


async def store_blob(backend: Backend, data: bytes, digest: Digest) -> StoredBlob:
    writer = backend.store.new_writer(digest)
    write_in_chunks(writer, data)
    return await writer.commit(digest)


def leftovers(directory: Path) -> list[Path]:
    """What writers left in their directory of local files."""
    return list(directory.iterdir())


async def listed(store: BlobStore) -> dict[Digest, int]:
    return {blob.digest: blob.size async for blob in store.iterate()}


async def read_range(store: BlobStore, digest: Digest, start: int, end: int) -> bytes:
    return b"".join([chunk async for chunk in store.open_range(digest, start, end)])


async def assert_absent(backend: Backend, *digests: Digest) -> None:
    for digest in digests:
        assert await backend.store.stat(digest) is None
        with pytest.raises(FileNotFoundError):
            await backend.store.read(digest)
    assert await listed(backend.store) == {}
    assert leftovers(backend.tmp_dir) == []


async def test_commit_makes_the_blob_visible(backend: Backend) -> None:
    data, digest = content(100_000)
    assert await backend.store.writable()
    writer = backend.store.new_writer(digest)
    write_in_chunks(writer, data)
    assert (writer.size, writer.on_disk) == (len(data), len(data))
    assert await backend.store.stat(digest) is None
    with pytest.raises(FileNotFoundError):
        await backend.store.read(digest)
    assert await listed(backend.store) == {}

    stored = await writer.commit(digest)

    assert (stored.digest, stored.size) == (digest, len(data))
    stat = await backend.store.stat(digest)
    assert stat is not None and (stat.digest, stat.size) == (digest, len(data))
    assert await backend.store.read(digest) == data
    assert await listed(backend.store) == {digest: len(data)}
    assert leftovers(backend.tmp_dir) == []


async def test_ranges_give_the_exact_bytes(backend: Backend) -> None:
    data, digest = content(3 * MIB + 17)
    await store_blob(backend, data, digest)
    size = len(data)
    spans = [(0, size), (0, 1), (size - 1, size), (12345, 2 * MIB + 7), (MIB, MIB + 1), (7, 7)]
    for start, end in spans:
        assert await read_range(backend.store, digest, start, end) == data[start:end]


async def test_an_empty_blob(backend: Backend) -> None:
    data, digest = content(0)
    stored = await store_blob(backend, data, digest)
    assert stored.size == 0
    assert await backend.store.read(digest) == b""
    assert await listed(backend.store) == {digest: 0}


@pytest.mark.parametrize("size", SIZES)
async def test_a_digest_mismatch_leaves_nothing(backend: Backend, size: int) -> None:
    data, digest = content(size)
    _, wrong = content(size, seed=1)
    writer = backend.store.new_writer(wrong)
    write_in_chunks(writer, data)
    with pytest.raises(DigestMismatch):
        await writer.commit(wrong)
    writer.abort()  # as the cache does after any failure: must be harmless
    await assert_absent(backend, digest, wrong)


@pytest.mark.parametrize("size", SIZES)
async def test_abort_leaves_nothing(backend: Backend, size: int) -> None:
    data, digest = content(size)
    writer = backend.store.new_writer(digest)
    write_in_chunks(writer, data)
    writer.abort()
    writer.abort()
    await assert_absent(backend, digest)


async def test_delete(backend: Backend) -> None:
    data, digest = content(5000)
    await store_blob(backend, data, digest)
    await backend.store.delete(digest)
    await assert_absent(backend, digest)
    with pytest.raises(FileNotFoundError):
        await read_range(backend.store, digest, 0, len(data))
    await backend.store.delete(digest)


async def test_iterate_lists_exactly_the_committed_blobs(backend: Backend) -> None:
    blobs = [content(size, seed) for seed, size in enumerate([10, 70_000, 9 * MIB])]
    for data, digest in blobs:
        await store_blob(backend, data, digest)
    aborted_data, aborted = content(2000, seed=10)
    writer = backend.store.new_writer(aborted)
    writer.write(aborted_data)
    writer.abort()
    wrong_data, wrong = content(3000, seed=11)
    writer = backend.store.new_writer(wrong)
    writer.write(wrong_data[1:])
    with pytest.raises(DigestMismatch):
        await writer.commit(wrong)

    assert await listed(backend.store) == {digest: len(data) for data, digest in blobs}


async def test_a_multipart_blob_round_trips(backend: Backend) -> None:
    data, digest = content(20 * MIB + 123)
    stored = await store_blob(backend, data, digest)
    assert stored.size == len(data)
    whole = await read_range(backend.store, digest, 0, len(data))
    assert hashlib.sha256(whole).hexdigest() == digest.hex
    boundary = 8 * MIB
    crossing = await read_range(backend.store, digest, boundary - 10, boundary + 10)
    assert crossing == data[boundary - 10 : boundary + 10]


async def test_a_reader_follows_the_local_file(backend: Backend) -> None:
    data, digest = content(10 * MIB)
    half = len(data) // 2
    writer = backend.store.new_writer(digest)
    writer.write(data[:half])
    fd = os.open(writer.path, os.O_RDONLY)
    try:
        assert os.pread(fd, len(data), 0) == data[:half]
        writer.write(data[half:])
        assert writer.on_disk == len(data)
        assert os.pread(fd, len(data), half) == data[half:]
        await writer.commit(digest)
        assert os.pread(fd, len(data), 0) == data  # the descriptor outlives the commit
    finally:
        os.close(fd)


async def test_recover_removes_leftovers(backend: Backend) -> None:
    kept_data, kept = content(4000)
    await store_blob(backend, kept_data, kept)
    (backend.tmp_dir / "left-by-a-crash").write_bytes(b"partial")
    data, digest = content(5000, seed=1)
    abandoned = backend.store.new_writer(digest)
    abandoned.write(data)

    await backend.store.recover()

    assert leftovers(backend.tmp_dir) == []
    assert await listed(backend.store) == {kept: len(kept_data)}
    assert await backend.store.read(kept) == kept_data
    abandoned.abort()


async def test_a_failing_store_fails_the_commit_and_keeps_nothing(backend: Backend) -> None:
    data, digest = content(20 * MIB + 1)
    writer = backend.store.new_writer(digest)
    write_in_chunks(writer, data[: 10 * MIB])
    await backend.break_store()
    try:
        write_in_chunks(writer, data[10 * MIB :])  # never raises: the clients still get the bytes
        assert writer.size == writer.on_disk == len(data)
        with pytest.raises(StoreFailed):
            await writer.commit(digest)
    finally:
        await backend.repair_store()
    await assert_absent(backend, digest)
