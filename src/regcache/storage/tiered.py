"""A node's local disk cache in front of a shared object store, for hot blobs.

The object store stays the truth (what exists, what is evicted); the local copies only make
reads zero-copy and spare the store. A blob lands locally when this node downloaded it, or when
it was read from the store whole (and then verified). Local copies are evicted least recently
used first, within their own budget.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from regcache.reference import Digest
from regcache.storage.base import BlobStore, BlobWriter, StoredBlob
from regcache.storage.filesystem import FilesystemStore


class TieredWriter:
    """The remote store's writer; once it committed, its file is kept locally too."""

    def __init__(self, tiered: TieredStore, inner: BlobWriter) -> None:
        self._tiered = tiered
        self._inner = inner

    @property
    def path(self) -> Path:
        return self._inner.path

    @property
    def size(self) -> int:
        return self._inner.size

    @property
    def on_disk(self) -> int:
        return self._inner.on_disk

    def write(self, data: bytes) -> None:
        self._inner.write(data)

    def verify(self, digest: Digest) -> None:
        self._inner.verify(digest)

    async def commit(self, digest: Digest) -> StoredBlob:
        keep = self._tiered.spare_path()
        with contextlib.suppress(OSError):
            os.link(self._inner.path, keep)  # the remote writer deletes its file at commit
        try:
            stored = await self._inner.commit(digest)
        except BaseException:
            keep.unlink(missing_ok=True)
            raise
        if keep.exists() and self._inner.on_disk == stored.size:
            self._tiered.adopt(keep, digest)
        return stored

    def abort(self) -> None:
        self._inner.abort()


class TieredStore:
    def __init__(self, remote: BlobStore, local: FilesystemStore, budget: int) -> None:
        self.remote = remote
        self.local = local
        self.budget = budget

    async def recover(self) -> None:
        await self.local.recover()
        await self.remote.recover()
        self._fit()

    async def stat(self, digest: Digest) -> StoredBlob | None:
        return await self.remote.stat(digest)

    def local_path(self, digest: Digest) -> Path | None:
        path = self.local.path(digest)
        try:
            os.utime(path)  # its last use, for the local eviction order
        except FileNotFoundError:
            return None
        return path

    async def read(self, digest: Digest) -> bytes:
        if self.local_path(digest) is not None:
            return await self.local.read(digest)
        return await self.remote.read(digest)

    async def open_range(self, digest: Digest, start: int, end: int) -> AsyncIterator[bytes]:
        """From the store; a whole blob read is also verified and kept locally."""
        if start != 0:
            async for chunk in self.remote.open_range(digest, start, end):
                yield chunk
            return
        spare = self.spare_path()
        hasher = hashlib.sha256()
        try:
            with spare.open("wb") as file:
                async for chunk in self.remote.open_range(digest, start, end):
                    hasher.update(chunk)
                    file.write(chunk)
                    yield chunk
            if hasher.hexdigest() == digest.hex:
                self.adopt(spare, digest)
        finally:
            spare.unlink(missing_ok=True)

    async def presigned_url(self, digest: Digest) -> str | None:
        return await self.remote.presigned_url(digest)

    def new_writer(self, digest: Digest | None = None) -> TieredWriter:
        return TieredWriter(self, self.remote.new_writer(digest))

    async def delete(self, digest: Digest) -> None:
        await self.remote.delete(digest)
        await self.local.delete(digest)

    def iterate(self) -> AsyncIterator[StoredBlob]:
        return self.remote.iterate()

    async def writable(self) -> bool:
        return await self.remote.writable()

    def spare_path(self) -> Path:
        return self.local.root / "tmp" / f"local-{uuid.uuid4().hex}"

    def adopt(self, spare: Path, digest: Digest) -> None:
        """Keep a verified file as the local copy of `digest`, then fit the local budget."""
        final = self.local.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(spare, final)
        self._fit()

    def _fit(self) -> None:
        files = []
        for path in (self.local.root / "blobs").glob("sha256/*/*"):
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                files.append((st.st_mtime, st.st_size, path))
        used = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if used <= self.budget:
                break
            path.unlink(missing_ok=True)
            used -= size
