"""Blobs as files: written to tmp/, verified, then renamed into blobs/ atomically."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from regcache.errors import RegistryError
from regcache.reference import Digest
from regcache.storage.base import StoredBlob, StoreFailed, blob_key
from regcache.storage.localfile import LocalFile

READ_CHUNK = 1024 * 1024


class FileWriter:
    def __init__(self, path: Path, store: FilesystemStore) -> None:
        self._file = LocalFile(path)
        self._store = store
        self._final: Path | None = None

    @property
    def path(self) -> Path:
        return self._final or self._file.path

    @property
    def size(self) -> int:
        return self._file.size

    @property
    def on_disk(self) -> int:
        return self._file.on_disk

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def verify(self, digest: Digest) -> None:
        self._file.verify(digest)

    async def commit(self, digest: Digest) -> StoredBlob:
        assert self._file.open, "commit after close"
        try:
            self._file.verify(digest)
        except BaseException:
            self.abort()
            raise
        fd = self._file.detach()
        try:
            await asyncio.to_thread(os.fdatasync, fd)
            final = self._store.path(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self._file.path, final)
        except OSError as exc:
            self.abort()
            raise StoreFailed(f"could not keep the blob: {exc.strerror}") from None
        finally:
            os.close(fd)
        self._final = final
        return StoredBlob(digest, self._file.size, final.stat().st_mtime)

    def abort(self) -> None:
        if self._final is None:
            self._file.discard()


class FilesystemStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self._blobs = root / "blobs"

    async def recover(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._blobs.mkdir(parents=True, exist_ok=True)

    def path(self, digest: Digest) -> Path:
        return self.root / blob_key(digest)

    def local_path(self, digest: Digest) -> Path:
        return self.path(digest)

    async def stat(self, digest: Digest) -> StoredBlob | None:
        try:
            st = self.path(digest).stat()
        except FileNotFoundError:
            return None
        return StoredBlob(digest, st.st_size, st.st_mtime)

    async def read(self, digest: Digest) -> bytes:
        return self.path(digest).read_bytes()

    async def open_range(self, digest: Digest, start: int, end: int) -> AsyncIterator[bytes]:
        with self.path(digest).open("rb") as file:
            position = start
            while position < end:
                chunk = os.pread(file.fileno(), min(READ_CHUNK, end - position), position)
                if not chunk:
                    raise OSError(f"{digest} is shorter than {end} bytes")
                position += len(chunk)
                yield chunk

    async def presigned_url(self, digest: Digest) -> None:
        return None

    def new_writer(self, digest: Digest | None = None) -> FileWriter:
        return FileWriter(self._tmp / uuid.uuid4().hex, self)

    async def delete(self, digest: Digest) -> None:
        self.path(digest).unlink(missing_ok=True)

    async def iterate(self) -> AsyncIterator[StoredBlob]:
        algorithm_dir = self._blobs / "sha256"
        if not algorithm_dir.is_dir():
            return
        for prefix in algorithm_dir.iterdir():
            for entry in prefix.iterdir():
                try:
                    digest = Digest.parse(f"sha256:{entry.name}")
                    st = entry.stat()
                except (RegistryError, OSError):
                    continue
                yield StoredBlob(digest, st.st_size, st.st_mtime)

    async def writable(self) -> bool:
        """Whether a file can really be made where downloads are written (root ignores modes)."""
        probe = self._tmp / f".probe-{uuid.uuid4().hex}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError:
            return False
        return True
