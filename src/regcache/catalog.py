"""What is cached, and the operator's actions on it: list, remove, purge, collect, verify."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

from regcache.cache import SharedContent
from regcache.errors import RegistryError
from regcache.index import ContentEntry
from regcache.mediatypes import MANIFEST_TYPES
from regcache.reference import Digest

log = logging.getLogger(__name__)
HASH_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class ImageRow:
    upstream: str
    repository: str
    tag: str
    digest: str
    size: int
    pulls: int
    last_pulled: float | None
    fetched_at: float

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Removal:
    removed: int
    freed_bytes: int

    def to_json(self) -> dict[str, int]:
        return asdict(self)


async def manifest_document(content: SharedContent, digest: Digest) -> dict[str, object] | None:
    try:
        doc = json.loads(await content.store.read(digest))
    except (FileNotFoundError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _descriptors(doc: dict[str, object], key: str) -> list[dict[str, object]]:
    value = doc.get(key)
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [entry for entry in value if isinstance(entry, dict)]
    return []


def _digests(entries: list[dict[str, object]]) -> list[Digest]:
    found = []
    for entry in entries:
        try:
            found.append(Digest.parse(str(entry.get("digest"))))
        except RegistryError:
            continue
    return found


async def image_size(content: SharedContent, digest: Digest) -> int:
    """Bytes of an image: config and layers, over every platform for an index."""
    doc = await manifest_document(content, digest)
    if doc is None:
        return 0
    children = _descriptors(doc, "manifests")
    if children:
        sizes = [await image_size(content, child) for child in _digests(children)]
        return sum(sizes)
    blobs = _descriptors(doc, "config") + _descriptors(doc, "layers")
    return sum(int(str(entry.get("size", 0))) for entry in blobs)


async def list_images(content: SharedContent) -> list[ImageRow]:
    rows = []
    for tag in await content.index.tag_rows():
        size = await image_size(content, tag.digest)
        rows.append(
            ImageRow(
                tag.upstream,
                tag.repository,
                tag.tag,
                str(tag.digest),
                size,
                tag.pulls,
                tag.last_pulled,
                tag.fetched_at,
            )
        )
    return rows


async def referenced(content: SharedContent) -> set[Digest]:
    """Every digest a stored manifest points to (configs, layers, platform manifests)."""
    found: set[Digest] = set()
    for entry in await content.index.entries():
        if entry.media_type not in MANIFEST_TYPES:
            continue
        doc = await manifest_document(content, entry.digest)
        if doc is None:
            continue
        for key in ("config", "layers", "manifests"):
            found.update(_digests(_descriptors(doc, key)))
    return found


async def _delete(content: SharedContent, entries: list[ContentEntry]) -> Removal:
    removed = freed = 0
    for entry in entries:
        if await content.in_use(entry.digest):
            continue
        if not await content.index.remove_content(entry.digest):
            continue  # another node removed it first
        content.manifests.forget(entry.digest)
        await content.store.delete(entry.digest)
        removed += 1
        freed += entry.size
    return Removal(removed, freed)


async def collect_garbage(content: SharedContent) -> Removal:
    """Drop blobs that no cached manifest refers to."""
    keep = await referenced(content)
    orphans = [
        entry
        for entry in await content.index.entries()
        if entry.media_type not in MANIFEST_TYPES and entry.digest not in keep
    ]
    return await _delete(content, orphans)


async def remove(
    content: SharedContent, repository: str, tag: str | None, upstream: str | None
) -> Removal:
    """Forget a repository (or one tag of it), then what no remaining tag needs."""
    tags = await content.index.remove_tags(upstream, repository, tag)
    still_tagged = {row.digest for row in await content.index.tag_rows()}
    needed: set[Digest] = set(still_tagged)
    for digest in still_tagged:
        doc = await manifest_document(content, digest)
        if doc is not None:
            needed.update(_digests(_descriptors(doc, "manifests")))
    manifests = [
        entry
        for entry in await content.index.entries()
        if entry.media_type in MANIFEST_TYPES and entry.digest not in needed
    ]
    dropped = await _delete(content, manifests)
    blobs = await collect_garbage(content)
    return Removal(tags + dropped.removed + blobs.removed, dropped.freed_bytes + blobs.freed_bytes)


async def purge(content: SharedContent, older_than: float) -> Removal:
    """Drop everything not used since `older_than` (a Unix time), and tags left without content."""
    stale = [entry for entry in await content.index.entries() if entry.last_access < older_than]
    removal = await _delete(content, stale)
    gone = {
        str(entry.digest) for entry in stale if await content.index.content(entry.digest) is None
    }
    await content.index.remove_tags_to(gone)
    return removal


async def verify(content: SharedContent) -> AsyncIterator[dict[str, object]]:
    """Re-hash every stored blob; a corrupt one is removed. Yields one event per blob."""
    entries = await content.index.entries()
    yield {"event": "start", "total": len(entries), "bytes": sum(e.size for e in entries)}
    corrupt = []
    for entry in entries:
        if await content.in_use(entry.digest):
            continue
        actual = await _hash(content, entry.digest)
        ok = actual == entry.digest.hex
        if not ok:
            corrupt.append(str(entry.digest))
            log.error("stored blob %s is corrupt: removed", entry.digest)
            await _delete(content, [entry])
        yield {"event": "blob", "digest": str(entry.digest), "size": entry.size, "ok": ok}
    yield {"event": "done", "checked": len(entries), "corrupt": corrupt}


async def _hash(content: SharedContent, digest: Digest) -> str | None:
    path = content.store.local_path(digest)
    if path is not None:
        return await asyncio.to_thread(_hash_file, str(path))
    hasher = hashlib.sha256()
    try:
        stat = await content.store.stat(digest)
        if stat is None:
            return None
        async for chunk in content.store.open_range(digest, 0, stat.size):
            hasher.update(chunk)
    except OSError:
        return None
    return hasher.hexdigest()


def _hash_file(path: str) -> str | None:
    hasher = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            while chunk := file.read(HASH_CHUNK):
                hasher.update(chunk)
    except OSError:
        return None
    return hasher.hexdigest()
