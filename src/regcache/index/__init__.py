"""Metadata about cached content: SQLite on one node, Redis shared by many."""

from regcache.index.base import ContentEntry, Index, TagEntry, TagRow
from regcache.index.sqlite import SqliteIndex

__all__ = ["ContentEntry", "Index", "SqliteIndex", "TagEntry", "TagRow"]
