"""Keeping stored content under the size budget, least recently used first."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from regcache.index import Index
from regcache.metrics import Metrics
from regcache.reference import Digest
from regcache.storage import BlobStore

log = logging.getLogger(__name__)


class Evictor:
    """Deletes least recently used content until it fits, sparing any digest that is in use.

    `reserved` is what downloads still under way will add; it counts against the budget too.
    """

    def __init__(
        self,
        store: BlobStore,
        index: Index,
        budget: int,
        in_use: Callable[[Digest], Awaitable[bool]],
        reserved: Callable[[], int],
        metrics: Metrics,
        forget: Callable[[Digest], None],
    ) -> None:
        self.budget = budget
        self._store = store
        self._index = index
        self._in_use = in_use
        self._reserved = reserved
        self._metrics = metrics
        self._forget = forget

    async def over_budget(self, incoming: int = 0) -> int:
        return await self._index.total() + self._reserved() + incoming - self.budget

    async def make_room(self, incoming: int = 0) -> int:
        """Evict until `incoming` more bytes fit; returns how many bytes are still over budget."""
        excess = await self.over_budget(incoming)
        if excess <= 0:
            return 0
        for entry in await self._index.least_recently_used():
            if excess <= 0:
                break
            if await self._in_use(entry.digest):
                continue
            # The index says who removes it: with a shared index, exactly one node does.
            if not await self._index.remove_content(entry.digest):
                continue
            self._forget(entry.digest)
            await self._store.delete(entry.digest)
            self._metrics.evictions.inc()
            self._metrics.evicted_bytes.inc(entry.size)
            excess -= entry.size
            log.debug("evicted %s (%d bytes)", entry.digest, entry.size)
        return max(excess, 0)
