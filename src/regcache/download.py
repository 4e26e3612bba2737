"""A blob on its way from the upstream to storage, which any number of clients read as it grows."""

from __future__ import annotations

import asyncio
import os

from regcache.reference import Digest
from regcache.storage import BlobWriter


class DownloadFailed(Exception):
    """The download did not produce a verified blob; nothing of it was kept."""


SPILL_LIMIT = 16 * 1024 * 1024


class Download:
    """Progress of one upstream download into a `BlobWriter`.

    Readers see at most `readable()` bytes: all but the last byte until the bytes matched their
    digest, so that a body which turns out wrong can never reach a client as a complete one.

    Bytes the writer could not put on disk (disk full) are kept in memory instead, as `spill`,
    until every reader has passed them: the transfer still reaches its clients, paced by the
    slowest one, and nothing of it is kept.
    """

    def __init__(
        self, digest: Digest, writer: BlobWriter, *, upstream: str = "", repository: str = ""
    ) -> None:
        self.digest = digest
        self.writer = writer
        self.upstream = upstream
        self.repository = repository
        self.size: int | None = None
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.committed = False
        self.verified = False
        self.indexed = False
        self.error: BaseException | None = None
        self.readers = 0
        # Held from the start, as a backend may delete its file at commit while readers still
        # come; closed once the download is over and no reader holds a claim on it.
        self._fd: int | None = os.open(writer.path, os.O_RDONLY)
        self.positions: dict[int, int] = {}
        self.spill: list[bytes] = []
        self.spill_start = 0
        self._changed = asyncio.Event()

    @property
    def done(self) -> bool:
        return self.committed or self.error is not None

    @property
    def written(self) -> int:
        return self.writer.size

    def readable(self) -> int:
        if self.verified or self.committed:
            return self.written
        return max(self.written - 1, 0)

    def verify(self) -> None:
        """The bytes matched their digest: readers may have the last one (keeping them may
        still take a moment)."""
        self.verified = True
        self.progressed()

    def start(self, size: int | None) -> None:
        self.size = size
        if not self.started.done():
            self.started.set_result(None)

    @property
    def on_disk(self) -> int:
        return self.writer.on_disk

    def received(self, chunk: bytes) -> None:
        """Record a chunk just given to the writer; keep it in memory if it missed the disk."""
        if self.writer.on_disk < self.writer.size:
            if not self.spill:
                self.spill_start = self.writer.size - len(chunk)
            self.spill.append(chunk)
        self.progressed()

    @property
    def spilled(self) -> int:
        return sum(map(len, self.spill))

    def read_spill(self, position: int, stop: int) -> bytes:
        """Bytes [position, stop) from memory; position must be at or past `spill_start`."""
        offset = self.spill_start
        for chunk in self.spill:
            end = offset + len(chunk)
            if position < end:
                return chunk[position - offset : min(stop, end) - offset]
            offset = end
        return b""

    def trim_spill(self) -> None:
        """Forget spilled chunks every reader has passed."""
        slowest = min(self.positions.values(), default=self.written)
        while self.spill and self.spill_start + len(self.spill[0]) <= slowest:
            self.spill_start += len(self.spill.pop(0))

    async def readers_caught_up(self) -> None:
        """Wait until the spill is under its limit; with no reader left, nobody needs it."""
        while True:
            self.trim_spill()
            if not self.positions:
                self.spill.clear()
                raise DownloadFailed("storage failed and no client is reading")
            if self.spilled <= SPILL_LIMIT:
                return
            await self._changed.wait()

    def advanced(self, reader: int, position: int) -> None:
        self.positions[reader] = position
        if self.spill:
            self.progressed()

    def progressed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def claim(self) -> None:
        """A client will read this download: its file stays open until `release`."""
        self.readers += 1

    def release(self) -> None:
        self.readers -= 1
        self._close_when_unused()

    def _close_when_unused(self) -> None:
        if self.done and self.readers <= 0 and self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def commit(self) -> None:
        self.committed = self.verified = True
        self.progressed()
        self._close_when_unused()

    def fail(self, error: BaseException) -> None:
        self.error = error
        if not self.started.done():
            self.started.set_exception(error)
            self.started.exception()  # retrieved: readers that never came must not warn
        self.progressed()
        self._close_when_unused()

    async def finished(self) -> None:
        """Wait until the blob is kept (or served and given up); DownloadFailed if it failed."""
        while not self.done:
            await self._changed.wait()
        if self.error is not None:
            raise DownloadFailed(str(self.error)) from self.error

    async def wait_readable(self, offset: int) -> int:
        """Wait until more than `offset` bytes are readable; returns how many are."""
        while True:
            if self.error is not None:
                raise DownloadFailed(str(self.error)) from self.error
            available = self.readable()
            if available > offset or (self.verified and available >= offset):
                return available
            await self._changed.wait()

    def open_reader(self) -> int:
        """A descriptor on the growing file, valid whatever the commit does with the file.

        Only for a client holding a claim."""
        assert self._fd is not None, "open_reader without a claim"
        return os.dup(self._fd)
