"""The storage interface every backend implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from regcache.reference import Digest


class DigestMismatch(Exception):
    """The bytes written do not hash to the digest they were written for."""

    def __init__(self, expected: Digest, actual: str, size: int) -> None:
        super().__init__(f"expected {expected}, got sha256:{actual} ({size} bytes)")
        self.expected = expected
        self.actual = actual


class StoreFailed(Exception):
    """The bytes were right but could not be kept (disk full, I/O error)."""


@dataclass(frozen=True, slots=True)
class StoredBlob:
    digest: Digest
    size: int
    mtime: float


def blob_key(digest: Digest) -> str:
    """The one key layout, shared by every backend: blobs/sha256/ab/<hex>."""
    return f"blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


class BlobWriter(Protocol):
    """A new blob being written; invisible to readers until `commit` verified it."""

    @property
    def path(self) -> Path: ...

    @property
    def size(self) -> int:
        """Bytes written so far, hashed whether or not they reached the disk."""

    @property
    def on_disk(self) -> int:
        """How many of the first bytes are in the file; less than `size` once writing failed."""

    def write(self, data: bytes) -> None:
        """Hash and store `data`; a storage failure is kept for `commit`, not raised here."""

    def verify(self, digest: Digest) -> None:
        """DigestMismatch for wrong bytes, StoreFailed for right bytes that missed the disk."""

    async def commit(self, digest: Digest) -> StoredBlob:
        """Verify and keep: DigestMismatch for wrong bytes, StoreFailed when they could not be
        kept; either way nothing stays behind."""

    def abort(self) -> None: ...


class BlobStore(Protocol):
    """Committed blobs by digest. Writers are local files first, so that readers can follow a
    download as it grows whatever the backend; `commit` makes a verified blob visible."""

    async def recover(self) -> None:
        """Drop every partial write left by an earlier process."""

    async def stat(self, digest: Digest) -> StoredBlob | None: ...

    def local_path(self, digest: Digest) -> Path | None:
        """A local file holding the blob, for zero-copy serving; None if the backend has none."""

    async def read(self, digest: Digest) -> bytes:
        """A whole (small) blob, such as a manifest; FileNotFoundError if it is not stored."""

    def open_range(self, digest: Digest, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes [start, end) of a stored blob, for backends without a local file."""

    async def presigned_url(self, digest: Digest) -> str | None:
        """A short-lived URL clients can fetch the blob from directly, if the backend has one."""

    def new_writer(self, digest: Digest | None = None) -> BlobWriter:
        """A writer for a new blob; knowing its digest lets a remote store upload as it grows."""

    async def delete(self, digest: Digest) -> None: ...

    def iterate(self) -> AsyncIterator[StoredBlob]: ...

    async def writable(self) -> bool: ...
