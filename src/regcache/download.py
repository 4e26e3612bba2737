"""A blob on its way from the upstream to storage, which any number of clients read as it grows."""

from __future__ import annotations

import asyncio
import os

from regcache.reference import Digest
from regcache.storage import BlobWriter


class DownloadFailed(Exception):
    """The download did not produce a verified blob; nothing of it was kept."""


class Download:
    """Progress of one upstream download into a `BlobWriter`.

    Readers see at most `readable()` bytes: all but the last byte until the blob is verified and
    committed, so that a body which turns out wrong can never reach a client as a complete one.
    """

    def __init__(self, digest: Digest, writer: BlobWriter) -> None:
        self.digest = digest
        self.writer = writer
        self.size: int | None = None
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.committed = False
        self.error: BaseException | None = None
        self.readers = 0
        self._changed = asyncio.Event()

    @property
    def done(self) -> bool:
        return self.committed or self.error is not None

    @property
    def written(self) -> int:
        return self.writer.size

    def readable(self) -> int:
        if self.committed:
            return self.written
        return max(self.written - 1, 0)

    def start(self, size: int | None) -> None:
        self.size = size
        if not self.started.done():
            self.started.set_result(None)

    def progressed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def commit(self) -> None:
        self.committed = True
        self.progressed()

    def fail(self, error: BaseException) -> None:
        self.error = error
        if not self.started.done():
            self.started.set_exception(error)
            self.started.exception()  # retrieved: readers that never came must not warn
        self.progressed()

    async def wait_readable(self, offset: int) -> int:
        """Wait until more than `offset` bytes are readable; returns how many are."""
        while True:
            if self.error is not None:
                raise DownloadFailed(str(self.error)) from self.error
            available = self.readable()
            if available > offset or (self.committed and available >= offset):
                return available
            await self._changed.wait()

    def open_reader(self) -> int:
        """A descriptor on the growing file; it stays valid across the commit's rename."""
        return os.open(self.writer.path, os.O_RDONLY)
