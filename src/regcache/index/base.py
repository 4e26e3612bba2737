"""What the cache keeps about content: the entries, and the interface every index implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from regcache.reference import Digest


@dataclass(frozen=True, slots=True)
class ContentEntry:
    digest: Digest
    size: int
    media_type: str | None
    last_access: float


@dataclass(frozen=True, slots=True)
class TagEntry:
    digest: Digest
    fetched_at: float


@dataclass(frozen=True, slots=True)
class TagRow:
    upstream: str
    repository: str
    tag: str
    digest: Digest
    fetched_at: float
    pulls: int
    last_pulled: float | None


class Index(Protocol):
    """Access times and pull counts are buffered in memory (`touch`, `record_pull`) and
    written by `flush_access`: a hit must not cost a write."""

    @property
    def total_size(self) -> int:
        """Bytes stored, as last known here (for gauges)."""

    async def total(self) -> int:
        """Bytes stored, as the budget counts them."""

    async def close(self) -> None: ...

    async def is_open(self) -> bool: ...

    async def add_content(
        self, digest: Digest, size: int, media_type: str | None, now: float
    ) -> None: ...

    async def content(self, digest: Digest) -> ContentEntry | None: ...

    async def remove_content(self, digest: Digest) -> bool:
        """Forget `digest`; True if this call removed it (so that one node acts on it)."""

    def touch(self, digest: Digest, now: float) -> None: ...

    def record_pull(self, upstream: str, repository: str, tag: str, now: float) -> None: ...

    async def flush_access(self) -> None: ...

    async def least_recently_used(self) -> list[ContentEntry]: ...

    async def digests(self) -> set[str]: ...

    async def entries(self) -> list[ContentEntry]: ...

    async def set_tag(
        self, upstream: str, repository: str, tag: str, digest: Digest, now: float
    ) -> None: ...

    async def tag(self, upstream: str, repository: str, tag: str) -> TagEntry | None: ...

    async def tag_rows(self) -> list[TagRow]: ...

    async def remove_tags(self, upstream: str | None, repository: str, tag: str | None) -> int: ...

    async def remove_tags_to(self, digests: set[str]) -> int: ...

    async def link(self, upstream: str, repository: str, digest: Digest) -> None: ...

    async def linked(self, upstream: str, repository: str, digest: Digest) -> bool: ...

    async def open_repositories(self, upstream: str) -> set[str]: ...

    async def mark_open(self, upstream: str, repository: str) -> None: ...
