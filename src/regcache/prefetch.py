"""Warming the cache ahead of time: every platform of a list of images, blob by blob."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from regcache.cache import CachedBlob, PullThroughCache
from regcache.download import DownloadFailed
from regcache.errors import RegistryError
from regcache.mediatypes import MANIFEST_TYPES
from regcache.reference import Digest
from regcache.routing import Router

PROGRESS_INTERVAL = 0.25
ALL_TYPES = set(MANIFEST_TYPES)


def split_reference(image: str) -> tuple[str, str]:
    """`name:tag`, `name@digest` or `name` (meaning `latest`) -> (name, reference)."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :]
    return image, "latest"


async def prefetch(router: Router, images: list[str]) -> AsyncIterator[dict[str, object]]:
    """Events: image (its blobs), progress, blob (done), error, and a closing summary."""
    summary = {"images": 0, "blobs": 0, "bytes": 0, "cached": 0, "errors": 0}
    for image in images:
        try:
            name, reference = split_reference(image.strip())
            target = router.resolve(name, host=None, ns=None)
            blobs = await _blobs_of(target.cache, target.repository, reference)
        except RegistryError as err:
            summary["errors"] += 1
            yield {"event": "error", "image": image, "message": err.message}
            continue
        summary["images"] += 1
        yield {"event": "image", "image": image, "blobs": [[str(d), s] for d, s in blobs]}
        for digest, size in blobs:
            async for event in _fetch_blob(target.cache, target.repository, digest, size):
                if event["event"] == "blob":
                    summary["blobs"] += 1
                    summary["bytes"] += size
                    summary["cached"] += 1 if event["source"] == "HIT" else 0
                elif event["event"] == "error":
                    summary["errors"] += 1
                yield {"image": image, **event}
    yield {"event": "done", **summary}


async def _blobs_of(
    cache: PullThroughCache, repository: str, reference: str
) -> list[tuple[Digest, int]]:
    found = await cache.manifest(repository, reference, ALL_TYPES, None)
    doc = json.loads(found.body)
    blobs: dict[Digest, int] = {}
    for child in doc.get("manifests") or ():
        for digest, size in await _blobs_of(cache, repository, child["digest"]):
            blobs[digest] = size
    for entry in [doc.get("config"), *(doc.get("layers") or ())]:
        if isinstance(entry, dict) and "digest" in entry:
            blobs[Digest.parse(entry["digest"])] = int(entry.get("size", 0))
    return list(blobs.items())


async def _fetch_blob(
    cache: PullThroughCache, repository: str, digest: Digest, size: int
) -> AsyncIterator[dict[str, object]]:
    try:
        found = await cache.blob(repository, digest, None)
    except RegistryError as err:
        yield {"event": "error", "digest": str(digest), "message": err.message}
        return
    if isinstance(found, CachedBlob):
        yield {"event": "blob", "digest": str(digest), "size": size, "source": "HIT"}
        return
    download = found.download
    finished = asyncio.ensure_future(download.finished())
    try:
        while not finished.done():
            await asyncio.wait({finished}, timeout=PROGRESS_INTERVAL)
            yield {"event": "progress", "digest": str(digest), "received": download.written,
                   "size": download.size or size}  # fmt: skip
        finished.result()
    except DownloadFailed as exc:
        yield {"event": "error", "digest": str(digest), "message": str(exc)}
        return
    finally:
        download.release()
    yield {"event": "blob", "digest": str(digest), "size": size, "source": found.source.value}
