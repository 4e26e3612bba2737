"""The pull-through logic: local first, one upstream fetch per digest, verify before keeping."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regcache.access import AccessCache
from regcache.download import SPILL_LIMIT, Download, DownloadFailed
from regcache.errors import (
    ManifestUnknown,
    RegistryError,
    TooManyRequests,
    UpstreamBadResponse,
    UpstreamUnavailable,
)
from regcache.eviction import Evictor
from regcache.freshness import FreshnessPolicy
from regcache.index import Index
from regcache.mediatypes import MANIFEST_TYPES, acceptable, upstream_accept
from regcache.metrics import Metrics
from regcache.reference import Digest, is_digest
from regcache.singleflight import SingleFlight
from regcache.storage import BlobStore, DigestMismatch, StoreFailed
from regcache.upstream import Credentials, ManifestResponse, UpstreamClient

if TYPE_CHECKING:  # the cluster needs the optional Redis client
    from regcache.cluster import Cluster, Lease

log = logging.getLogger(__name__)

# Failures after which a cached tag is served stale rather than not at all.
UPSTREAM_FAILURES = (UpstreamUnavailable, UpstreamBadResponse, TooManyRequests)
RESUME_ATTEMPTS = 5
RESUME_BACKOFF = 0.2
PEER_WAIT = 600.0
CLOSE_GRACE = 30.0
MANIFEST_MEMORY = 32 * 1024 * 1024
LINK_MEMORY = 200_000


class Source(StrEnum):
    HIT = "HIT"
    MISS = "MISS"
    STALE = "STALE"
    COALESCED = "COALESCED"


@dataclass(frozen=True)
class Manifest:
    body: bytes
    media_type: str
    digest: Digest
    source: Source
    warning: str | None = None


@dataclass(frozen=True)
class CachedBlob:
    digest: Digest
    path: Path | None  # a local file to send with sendfile; None: read it from the store
    size: int


@dataclass(frozen=True)
class StreamingBlob:
    download: Download
    source: Source


class SharedContent:
    """What every upstream's cache shares: content by digest, its downloads, and the budget.

    A blob with the same digest from two registries is stored, and downloaded, once.
    """

    def __init__(
        self,
        store: BlobStore,
        index: Index,
        *,
        budget: int,
        metrics: Metrics | None = None,
        cluster: Cluster | None = None,
    ) -> None:
        self.store = store
        self.index = index
        self.cluster = cluster
        self.redirect = False  # answer stored blob GETs with a presigned URL of the store
        self.metrics = metrics or Metrics()
        self.downloads: dict[Digest, Download] = {}
        self.download_tasks: set[asyncio.Task[None]] = set()
        self.pins: Counter[Digest] = Counter()
        self.flights: SingleFlight[tuple[str, ...], Any] = SingleFlight()
        self.manifests = ManifestMemory()
        self.evictor = Evictor(
            store, index, budget, self.in_use, self._reserved, self.metrics, self.manifests.forget
        )
        self.metrics.watch(
            size=lambda: index.total_size,
            budget=lambda: self.evictor.budget,
            in_flight=lambda: len(self.downloads),
            waiters=lambda: sum(d.readers for d in self.downloads.values()),
        )

    async def recover(self) -> None:
        """Make index and files agree after any stop, clean or not, then fit the budget."""
        await self.store.recover()
        on_disk = {str(blob.digest): blob async for blob in self.store.iterate()}
        known = await self.index.digests()
        for key in known - on_disk.keys():
            await self.index.remove_content(Digest.parse(key))
        for key in on_disk.keys() - known:
            blob = on_disk[key]
            await self.index.add_content(blob.digest, blob.size, None, blob.mtime)
        await self.evictor.make_room()

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Let downloads under way finish (bounded), so what clients got is kept; then stop."""
        if self.download_tasks:
            await asyncio.wait(set(self.download_tasks), timeout=grace)
        for task in list(self.download_tasks):
            task.cancel()
        await asyncio.gather(*self.download_tasks, return_exceptions=True)
        await self.index.close()

    @asynccontextmanager
    async def reading(self, digest: Digest) -> AsyncIterator[None]:
        """Keep `digest` from eviction (by any node of a cluster) while a client reads it."""
        self.pins[digest] += 1
        reader = await self.cluster.pin(digest) if self.cluster is not None else None
        try:
            yield
        finally:
            self.pins[digest] -= 1
            if self.pins[digest] <= 0:
                del self.pins[digest]
            if self.cluster is not None and reader is not None:
                await self.cluster.unpin(digest, reader)

    async def in_use(self, digest: Digest) -> bool:
        if digest in self.pins or digest in self.downloads:
            return True
        if self.cluster is None:
            return False
        return await self.cluster.pinned(digest) or await self.cluster.locked(digest)

    def _reserved(self) -> int:
        return sum(max(d.size or 0, d.written) for d in self.downloads.values() if not d.indexed)


class ManifestMemory:
    """Recently served manifests in memory: they are small, immutable and asked for often."""

    def __init__(self, budget: int = MANIFEST_MEMORY) -> None:
        self._budget = budget
        self._used = 0
        self._entries: OrderedDict[Digest, ManifestResponse] = OrderedDict()

    def recall(self, digest: Digest) -> ManifestResponse | None:
        found = self._entries.get(digest)
        if found is not None:
            self._entries.move_to_end(digest)
        return found

    def remember(self, manifest: ManifestResponse) -> None:
        if manifest.digest in self._entries or len(manifest.body) > self._budget:
            return
        self._entries[manifest.digest] = manifest
        self._used += len(manifest.body)
        while self._used > self._budget:
            _, dropped = self._entries.popitem(last=False)
            self._used -= len(dropped.body)

    def forget(self, digest: Digest) -> None:
        dropped = self._entries.pop(digest, None)
        if dropped is not None:
            self._used -= len(dropped.body)


class PullThroughCache:
    """The pull-through logic for one upstream, over the shared content."""

    def __init__(
        self,
        content: SharedContent,
        upstream: UpstreamClient,
        *,
        freshness: FreshnessPolicy | None = None,
        confirm_ttl: float = 60.0,
    ) -> None:
        self.content = content
        self.store = content.store
        self.index = content.index
        self.metrics = content.metrics
        self.evictor = content.evictor
        self.upstream = upstream
        self.freshness = freshness or FreshnessPolicy()
        self.access = AccessCache(confirm_ttl)
        self._downloads = content.downloads
        self._download_tasks = content.download_tasks
        self._flights = content.flights
        self._links: set[tuple[str, Digest]] = set()

    async def start(self) -> None:
        for repository in await self.index.open_repositories(self.upstream.name):
            self.access.mark_open(repository)

    # -- access ----------------------------------------------------------------------------

    def _identity(self, client: Credentials | None) -> tuple[str, bool]:
        used = self.upstream.credentials_for(client)
        default = self.upstream.credentials_for(None)
        return (used.identity if used else ""), used == default

    async def _confirmed(
        self, repository: str, client: Credentials | None, *digests: Digest
    ) -> None:
        identity, is_default = self._identity(client)
        if is_default and not self.access.is_open(repository):
            await self.index.mark_open(self.upstream.name, repository)
        self.access.confirm(identity, repository, is_default=is_default)
        for digest in digests:
            if (repository, digest) not in self._links:
                await self.index.link(self.upstream.name, repository, digest)
                self._remember_link(repository, digest)

    async def _authorize(
        self,
        repository: str,
        digest: Digest,
        client: Credentials | None,
        check: Callable[[], Awaitable[object]],
    ) -> None:
        """Serve cached content only to a client the upstream lets read it through `repository`."""
        identity, _ = self._identity(client)
        if self.access.allowed(identity, repository) and await self._linked(repository, digest):
            return
        await check()
        await self._confirmed(repository, client, digest)

    async def _linked(self, repository: str, digest: Digest) -> bool:
        """Whether `digest` is known to belong to `repository` (links are never taken back)."""
        if (repository, digest) in self._links:
            return True
        if not await self.index.linked(self.upstream.name, repository, digest):
            return False
        self._remember_link(repository, digest)
        return True

    def _remember_link(self, repository: str, digest: Digest) -> None:
        if len(self._links) >= LINK_MEMORY:
            self._links.clear()
        self._links.add((repository, digest))

    # -- manifests -------------------------------------------------------------------------

    async def manifest(
        self, repository: str, reference: str, accepted: set[str], client: Credentials | None
    ) -> Manifest:
        if is_digest(reference):
            return await self._manifest_by_digest(
                repository, Digest.parse(reference), accepted, client
            )
        return await self._manifest_by_tag(repository, reference, accepted, client)

    async def _manifest_by_digest(
        self, repository: str, digest: Digest, accepted: set[str], client: Credentials | None
    ) -> Manifest:
        accept = upstream_accept(accepted)
        stored = await self._stored_manifest(digest)
        if stored is not None:
            await self._authorize(
                repository,
                digest,
                client,
                lambda: self.upstream.head_manifest(repository, str(digest), accept, client),
            )
            return self._answer(stored, accepted, Source.HIT)
        fetched, source = await self._fetch_manifest(repository, str(digest), accept, client)
        if fetched.digest != digest:
            raise UpstreamBadResponse("the upstream's manifest does not match the digest asked for")
        return self._answer(fetched, accepted, source)

    async def _manifest_by_tag(
        self, repository: str, tag: str, accepted: set[str], client: Credentials | None
    ) -> Manifest:
        accept = upstream_accept(accepted)
        self.index.record_pull(self.upstream.name, repository, tag, time.time())
        cached = await self.index.tag(self.upstream.name, repository, tag)
        identity, _ = self._identity(client)
        if (
            cached is not None
            and self.freshness.is_fresh(tag, cached.fetched_at, time.time())
            and self.access.allowed(identity, repository)
        ):
            stored = await self._stored_manifest(cached.digest)
            if stored is not None:
                return self._answer(stored, accepted, Source.HIT)
        try:
            head = await self._flights.run(
                ("head", repository, tag, accept, identity),
                lambda: self.upstream.head_manifest(repository, tag, accept, client),
            )
        except UPSTREAM_FAILURES as exc:
            stale = await self._stale_tag(repository, tag, identity, exc)
            if stale is None:
                raise
            return self._answer(stale, accepted, Source.STALE, warning=_stale_warning(exc))
        if head.digest is not None:
            await self._confirmed(repository, client, head.digest)
            stored = await self._stored_manifest(head.digest)
            if stored is not None:
                await self.index.set_tag(
                    self.upstream.name, repository, tag, head.digest, time.time()
                )
                return self._answer(stored, accepted, Source.HIT)
        reference = str(head.digest) if head.digest is not None else tag
        fetched, source = await self._fetch_manifest(repository, reference, accept, client)
        await self.index.set_tag(self.upstream.name, repository, tag, fetched.digest, time.time())
        return self._answer(fetched, accepted, source)

    async def _stale_tag(
        self, repository: str, tag: str, identity: str, exc: RegistryError
    ) -> ManifestResponse | None:
        cached = await self.index.tag(self.upstream.name, repository, tag)
        if cached is None or not self.access.allowed(identity, repository):
            return None
        stored = await self._stored_manifest(cached.digest)
        if stored is not None:
            log.warning("serving %s:%s stale: %s", repository, tag, exc.message)
        return stored

    async def _fetch_manifest(
        self, repository: str, reference: str, accept: str, client: Credentials | None
    ) -> tuple[ManifestResponse, Source]:
        identity, _ = self._identity(client)
        key = (
            ("manifest", reference)
            if is_digest(reference)
            else ("manifest", repository, reference, accept, identity)
        )
        joined = self._flights.joined(key)
        fetched: ManifestResponse = await self._flights.run(
            key, lambda: self._download_manifest(repository, reference, accept, client)
        )
        if joined:
            await self._authorize(
                repository,
                fetched.digest,
                client,
                lambda: self.upstream.head_manifest(repository, reference, accept, client),
            )
        return fetched, (Source.COALESCED if joined else Source.MISS)

    async def _download_manifest(
        self, repository: str, reference: str, accept: str, client: Credentials | None
    ) -> ManifestResponse:
        fetched = await self.upstream.get_manifest(repository, reference, accept, client)
        if fetched.media_type not in MANIFEST_TYPES:
            raise UpstreamBadResponse(f"unsupported manifest type {fetched.media_type!r}")
        if await self._stored_manifest(fetched.digest) is None:
            writer = self.store.new_writer(fetched.digest)
            try:
                writer.write(fetched.body)
                blob = await writer.commit(fetched.digest)
            except BaseException:
                writer.abort()
                raise
            await self.index.add_content(fetched.digest, blob.size, fetched.media_type, time.time())
            await self.evictor.make_room()
        await self._confirmed(repository, client, fetched.digest, *_referenced(fetched.body))
        self.content.manifests.remember(fetched)
        return fetched

    async def _stored_manifest(self, digest: Digest) -> ManifestResponse | None:
        remembered = self.content.manifests.recall(digest)
        if remembered is not None:
            self.index.touch(digest, time.time())
            return remembered
        entry = await self.index.content(digest)
        if entry is None or entry.media_type not in MANIFEST_TYPES:
            return None
        try:
            body = await self.store.read(digest)
        except FileNotFoundError:
            await self.index.remove_content(digest)
            return None
        self.index.touch(digest, time.time())
        manifest = ManifestResponse(body, entry.media_type, digest)
        self.content.manifests.remember(manifest)
        return manifest

    def _answer(
        self,
        manifest: ManifestResponse,
        accepted: set[str],
        source: Source,
        warning: str | None = None,
    ) -> Manifest:
        if not acceptable(manifest.media_type, accepted):
            raise ManifestUnknown(
                f"the manifest is {manifest.media_type}, which the client's Accept does not allow",
                detail={"mediaType": manifest.media_type},
            )
        if source is Source.STALE:
            self.metrics.stale_served.labels(self.upstream.name).inc()
        return Manifest(manifest.body, manifest.media_type, manifest.digest, source, warning)

    # -- blobs -----------------------------------------------------------------------------

    async def blob(
        self, repository: str, digest: Digest, client: Credentials | None
    ) -> CachedBlob | StreamingBlob:
        """The blob from storage, or a download (new or joined) that readers follow as it grows."""
        authorized = False
        while True:
            stored = await self._stored_blob(digest)
            if stored is not None:
                if not authorized:
                    await self._authorize_blob(repository, digest, client)
                    authorized = True
                    continue  # the check awaited: look again
                self.index.touch(digest, time.time())
                return stored
            download = self._downloads.get(digest)
            if download is None:
                lease = None
                if self.content.cluster is not None:
                    lease = await self.content.cluster.acquire(digest)
                    if lease is None:  # another node is downloading it
                        if not authorized:
                            await self._authorize_blob(repository, digest, client)
                            authorized = True
                        await self._await_peer(digest)
                        continue
                    if digest in self._downloads or await self.store.stat(digest) is not None:
                        await self.content.cluster.release(lease)
                        continue  # it landed while we took the lock
                download = self._start_download(repository, digest, client, lease)
                return await _claimed(download, Source.MISS)
            if not authorized:
                await self._authorize_blob(repository, digest, client)
                authorized = True
                continue
            return await _claimed(download, Source.COALESCED)

    async def blob_size(self, repository: str, digest: Digest, client: Credentials | None) -> int:
        """The size for a HEAD: from storage or a running download, else an upstream HEAD."""
        stored = await self._stored_blob(digest)
        download = self._downloads.get(digest)
        if stored is not None or (download is not None and download.size is not None):
            await self._authorize_blob(repository, digest, client)
            if stored is not None:
                return stored.size
            if download is not None and download.size is not None:
                return download.size
        size = await self.upstream.head_blob(repository, digest, client)
        await self._confirmed(repository, client, digest)
        if size is None:
            raise UpstreamBadResponse("the upstream did not tell the blob's size")
        return size

    async def _authorize_blob(
        self, repository: str, digest: Digest, client: Credentials | None
    ) -> None:
        await self._authorize(
            repository, digest, client, lambda: self.upstream.head_blob(repository, digest, client)
        )

    async def _stored_blob(self, digest: Digest) -> CachedBlob | None:
        stat = await self.store.stat(digest)
        if stat is None:
            return None
        if await self.index.content(digest) is None:
            await self.index.add_content(digest, stat.size, None, time.time())
        return CachedBlob(digest, self.store.local_path(digest), stat.size)

    async def _await_peer(self, digest: Digest) -> None:
        """Wait while another node downloads `digest`: until it is stored or the lock is gone."""
        cluster = self.content.cluster
        assert cluster is not None
        deadline = time.monotonic() + max(self.upstream.settings.timeout * 20, PEER_WAIT)
        while time.monotonic() < deadline:
            if digest in self._downloads or await self.store.stat(digest) is not None:
                return
            if not await cluster.locked(digest):
                return
            await asyncio.sleep(cluster.poll)
        raise UpstreamUnavailable("another node's download of this blob did not finish in time")

    def _start_download(
        self,
        repository: str,
        digest: Digest,
        client: Credentials | None,
        lease: Lease | None = None,
    ) -> Download:
        download = Download(
            digest,
            self.store.new_writer(digest),
            upstream=self.upstream.name,
            repository=repository,
        )
        self._downloads[digest] = download
        task = asyncio.create_task(self._download_blob(repository, download, client, lease))
        self._download_tasks.add(task)
        task.add_done_callback(self._download_tasks.discard)
        return download

    async def _download_blob(
        self,
        repository: str,
        download: Download,
        client: Credentials | None,
        lease: Lease | None = None,
    ) -> None:
        try:
            await self._download_blob_unlocked(repository, download, client)
        finally:
            if lease is not None and self.content.cluster is not None:
                await self.content.cluster.release(lease)

    async def _download_blob_unlocked(
        self, repository: str, download: Download, client: Credentials | None
    ) -> None:
        digest, writer = download.digest, download.writer
        try:
            await self._transfer(repository, download, client)
            if download.size is not None and writer.size != download.size:
                raise UpstreamBadResponse(
                    f"the upstream sent {writer.size} of {download.size} bytes"
                )
            try:
                writer.verify(digest)
            except DigestMismatch as exc:
                log.error("blob %s from upstream failed verification: %s", digest, exc)
                raise UpstreamBadResponse("the upstream's blob does not match its digest") from None
            except StoreFailed:
                pass  # the bytes are right, and not kept: the commit says so below
            download.verify()  # clients get their last byte now, not after the fsync
            try:
                stored = await writer.commit(digest)
            except StoreFailed as exc:
                # The bytes were right: the clients get them, the cache keeps nothing.
                log.error("blob %s was served but not kept: %s", digest, exc)
                self.metrics.store_failures.inc()
                del self._downloads[digest]
                download.commit()
                return
            await self.index.add_content(digest, stored.size, None, time.time())
            download.indexed = True  # counted by the index now, not as a reservation
            await self._confirmed(repository, client, digest)
            await self.evictor.make_room()  # still registered: it cannot evict itself
            del self._downloads[digest]
            download.commit()
        except BaseException as exc:
            writer.abort()
            self._downloads.pop(digest, None)
            download.fail(exc)
            if isinstance(exc, RegistryError | OSError | DownloadFailed):
                self.metrics.download_failures.inc()
                log.warning("download of %s failed: %s", digest, exc)
            else:
                raise

    async def _transfer(
        self, repository: str, download: Download, client: Credentials | None
    ) -> None:
        """Copy the upstream body into the writer, resuming with Range when the stream breaks."""
        writer = download.writer
        received = self.metrics.upstream_bytes.labels(self.upstream.name)
        attempt = 0
        while True:
            try:
                response = await self.upstream.open_blob(
                    repository, download.digest, client, offset=writer.size
                )
                try:
                    if not download.started.done():
                        await self.evictor.make_room(response.size or 0)
                        download.start(response.size)
                    skip = writer.size - response.offset
                    async for chunk in response.chunks():
                        if skip > 0:  # the upstream ignored our Range: drop what we have
                            if len(chunk) <= skip:
                                skip -= len(chunk)
                                continue
                            chunk, skip = chunk[skip:], 0
                        writer.write(chunk)
                        received.inc(len(chunk))
                        download.received(chunk)
                        if download.spilled > SPILL_LIMIT:
                            await download.readers_caught_up()
                finally:
                    response.release()
                return
            except UpstreamUnavailable:
                attempt += 1
                if not download.started.done() or attempt > RESUME_ATTEMPTS:
                    raise
                self.metrics.download_resumes.inc()
                log.info(
                    "resuming %s at byte %d (attempt %d)", download.digest, writer.size, attempt
                )
                await asyncio.sleep(RESUME_BACKOFF * 2 ** (attempt - 1))

    # -- pass-through ----------------------------------------------------------------------

    async def tags(
        self, repository: str, query: dict[str, str], client: Credentials | None
    ) -> tuple[bytes, dict[str, str]]:
        result = await self.upstream.tags_list(repository, query, client)
        await self._confirmed(repository, client)
        return result


async def _claimed(download: Download, source: Source) -> StreamingBlob:
    """The download, claimed for the caller, who must `release()` it, once it has started."""
    download.claim()
    try:
        await asyncio.shield(download.started)
    except BaseException:
        download.release()
        raise
    return StreamingBlob(download, source)


def _referenced(body: bytes) -> list[Digest]:
    """The digests a manifest points to: they belong to the same repository."""
    try:
        doc = json.loads(body)
    except ValueError:
        return []
    found: list[Digest] = []
    entries = [doc.get("config"), *(doc.get("layers") or []), *(doc.get("manifests") or [])]
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("digest"), str):
            try:
                found.append(Digest.parse(entry["digest"]))
            except RegistryError:
                continue
    return found


def _stale_warning(exc: RegistryError) -> str:
    return f'110 regcache "Response is stale: upstream failed ({exc.code})"'
