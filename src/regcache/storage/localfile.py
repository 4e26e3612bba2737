"""The local file every new blob starts as, whatever the backend: hashed as it is written."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from regcache.reference import Digest
from regcache.storage.base import DigestMismatch, StoreFailed


class LocalFile:
    """Bytes written to a new file and hashed; a disk failure is kept for `verify`, not raised.

    After a failure the bytes are still counted and hashed (the download goes on for its
    clients), but no longer written: `on_disk` tells how many of the first bytes are there.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._hash = hashlib.sha256()
        self.size = 0
        self.on_disk = 0
        self._error: OSError | None = None

    @property
    def open(self) -> bool:
        return self._fd is not None

    def write(self, data: bytes) -> bool:
        """Hash `data` and write it; whether it reached the disk."""
        assert self._fd is not None, "write after close"
        self._hash.update(data)
        self.size += len(data)
        if self._error is not None:
            return False
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            self._error = exc
            return False
        self.on_disk = self.size
        return True

    def verify(self, digest: Digest) -> None:
        """DigestMismatch for wrong bytes; StoreFailed for right bytes that missed the disk."""
        actual = self._hash.hexdigest()
        if actual != digest.hex:
            raise DigestMismatch(digest, actual, self.size)
        if self._error is not None:
            raise StoreFailed(f"could not write the blob: {self._error.strerror}")

    def detach(self) -> int:
        """The descriptor, now the caller's to close; the file stays."""
        assert self._fd is not None, "detach after close"
        fd, self._fd = self._fd, None
        return fd

    def discard(self) -> None:
        """Close and delete the file (what readers hold open stays readable)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.unlink(missing_ok=True)
