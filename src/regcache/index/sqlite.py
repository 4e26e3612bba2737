"""The index in SQLite: what is stored, its size and type, tags, links, last use.

Access times are buffered in memory and written in batches: a hit must not cost a disk write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from regcache.index.base import ContentEntry, TagEntry, TagRow
from regcache.reference import Digest

SCHEMA = """
CREATE TABLE IF NOT EXISTS content (
    digest TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    media_type TEXT,
    created REAL NOT NULL,
    last_access REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS content_lru ON content (last_access);
CREATE TABLE IF NOT EXISTS tags (
    upstream TEXT NOT NULL,
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    digest TEXT NOT NULL,
    fetched_at REAL NOT NULL,
    pulls INTEGER NOT NULL DEFAULT 0,
    last_pulled REAL,
    PRIMARY KEY (upstream, repository, tag)
);
CREATE TABLE IF NOT EXISTS open_repositories (
    upstream TEXT NOT NULL,
    repository TEXT NOT NULL,
    PRIMARY KEY (upstream, repository)
);
CREATE TABLE IF NOT EXISTS links (
    upstream TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (upstream, repository, digest)
);
"""


class SqliteIndex:
    """The single-node index: a SQLite file beside the blobs."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._pending_access: dict[str, float] = {}
        self._pending_pulls: dict[tuple[str, str, str], tuple[int, float]] = {}
        row = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM content").fetchone()
        self._total = int(row[0])

    async def close(self) -> None:
        await self.flush_access()
        self._db.close()

    async def is_open(self) -> bool:
        try:
            self._db.execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    @property
    def total_size(self) -> int:
        """Bytes stored, as last known here (for gauges)."""
        return self._total

    async def total(self) -> int:
        """Bytes stored, as the budget counts them."""
        return self._total

    async def add_content(
        self, digest: Digest, size: int, media_type: str | None, now: float
    ) -> None:
        key = str(digest)
        old = self._db.execute("SELECT size FROM content WHERE digest = ?", (key,)).fetchone()
        self._db.execute(
            "INSERT OR REPLACE INTO content (digest, size, media_type, created, last_access)"
            " VALUES (?, ?, ?, ?, ?)",
            (key, size, media_type, now, now),
        )
        self._total += size - (old[0] if old else 0)

    async def content(self, digest: Digest) -> ContentEntry | None:
        row = self._db.execute(
            "SELECT size, media_type, last_access FROM content WHERE digest = ?", (str(digest),)
        ).fetchone()
        if row is None:
            return None
        last_access = self._pending_access.get(str(digest), row[2])
        return ContentEntry(digest, row[0], row[1], last_access)

    async def remove_content(self, digest: Digest) -> bool:
        key = str(digest)
        self._pending_access.pop(key, None)
        row = self._db.execute("DELETE FROM content WHERE digest = ? RETURNING size", (key,))
        removed = row.fetchone()
        if removed:
            self._total -= removed[0]
        return removed is not None

    def touch(self, digest: Digest, now: float) -> None:
        self._pending_access[str(digest)] = now

    async def flush_access(self) -> None:
        if not self._pending_access and not self._pending_pulls:
            return
        pending, self._pending_access = self._pending_access, {}
        pulls, self._pending_pulls = self._pending_pulls, {}
        with self._transaction():
            self._db.executemany(
                "UPDATE content SET last_access = ? WHERE digest = ?",
                [(when, key) for key, when in pending.items()],
            )
            self._db.executemany(
                "UPDATE tags SET pulls = pulls + ?, last_pulled = ?"
                " WHERE upstream = ? AND repository = ? AND tag = ?",
                [(count, when, *key) for key, (count, when) in pulls.items()],
            )

    def record_pull(self, upstream: str, repository: str, tag: str, now: float) -> None:
        key = (upstream, repository, tag)
        count, _ = self._pending_pulls.get(key, (0, now))
        self._pending_pulls[key] = (count + 1, now)

    async def tag_rows(self) -> list[TagRow]:
        await self.flush_access()
        rows = self._db.execute(
            "SELECT upstream, repository, tag, digest, fetched_at, pulls, last_pulled FROM tags"
            " ORDER BY upstream, repository, tag"
        ).fetchall()
        return [TagRow(u, r, t, Digest.parse(d), f, p, lp) for u, r, t, d, f, p, lp in rows]

    async def remove_tags(self, upstream: str | None, repository: str, tag: str | None) -> int:
        clauses, args = ["repository = ?"], [repository]
        if upstream is not None:
            clauses.append("upstream = ?")
            args.append(upstream)
        if tag is not None:
            clauses.append("tag = ?")
            args.append(tag)
        cursor = self._db.execute(f"DELETE FROM tags WHERE {' AND '.join(clauses)}", args)
        return cursor.rowcount

    async def remove_tags_to(self, digests: set[str]) -> int:
        """Forget tags whose manifest is gone."""
        removed = 0
        for digest in digests:
            removed += self._db.execute("DELETE FROM tags WHERE digest = ?", (digest,)).rowcount
        return removed

    async def entries(self) -> list[ContentEntry]:
        await self.flush_access()
        rows = self._db.execute("SELECT digest, size, media_type, last_access FROM content")
        return [ContentEntry(Digest.parse(d), s, m, a) for d, s, m, a in rows.fetchall()]

    async def least_recently_used(self) -> list[ContentEntry]:
        await self.flush_access()
        rows = self._db.execute(
            "SELECT digest, size, media_type, last_access FROM content ORDER BY last_access"
        ).fetchall()
        return [ContentEntry(Digest.parse(d), s, m, a) for d, s, m, a in rows]

    async def digests(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT digest FROM content")}

    async def set_tag(
        self, upstream: str, repository: str, tag: str, digest: Digest, now: float
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO tags (upstream, repository, tag, digest, fetched_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (upstream, repository, tag, str(digest), now),
        )

    async def tag(self, upstream: str, repository: str, tag: str) -> TagEntry | None:
        row = self._db.execute(
            "SELECT digest, fetched_at FROM tags WHERE upstream = ? AND repository = ? AND tag = ?",
            (upstream, repository, tag),
        ).fetchone()
        return None if row is None else TagEntry(Digest.parse(row[0]), row[1])

    async def link(self, upstream: str, repository: str, digest: Digest) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO links (upstream, repository, digest) VALUES (?, ?, ?)",
            (upstream, repository, str(digest)),
        )

    async def linked(self, upstream: str, repository: str, digest: Digest) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM links WHERE upstream = ? AND repository = ? AND digest = ?",
            (upstream, repository, str(digest)),
        ).fetchone()
        return row is not None

    async def open_repositories(self, upstream: str) -> set[str]:
        rows = self._db.execute(
            "SELECT repository FROM open_repositories WHERE upstream = ?", (upstream,)
        )
        return {row[0] for row in rows}

    async def mark_open(self, upstream: str, repository: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO open_repositories (upstream, repository) VALUES (?, ?)",
            (upstream, repository),
        )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
