"""Blobs in an S3-compatible object store: AWS S3, MinIO, SeaweedFS, Ceph RGW.

A writer keeps the bytes in a local file first, like the filesystem backend, so that readers can
follow a download as it grows. Given the digest it expects, it uploads that file while it grows:
a multipart upload straight to the blob's key, one background task per part reading it back from
the file. The object appears only when `commit` completes the upload, after the digest matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from regcache.errors import RegistryError
from regcache.reference import Digest
from regcache.storage.base import DigestMismatch, StoredBlob, StoreFailed, blob_key
from regcache.storage.localfile import LocalFile

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

# S3 allows 10,000 parts: blobs up to 78 GiB.
PART_SIZE = 8 * 1024 * 1024
# Parts read back and being sent at once, for the whole store: that bounds the memory they take.
PART_UPLOADS = 4
STALE_UPLOAD_AGE = 3600.0
READ_CHUNK = 1024 * 1024
POOL_CONNECTIONS = 100

_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
_TRANSPORT_ERRORS = (BotoCoreError, aiohttp.ClientError, TimeoutError)


@dataclass(frozen=True, slots=True)
class S3Settings:
    """Where the blobs go. Without keys, the usual AWS credential chain is asked."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    presign_ttl: float = 300.0


@contextlib.contextmanager
def _errors(action: str) -> Iterator[None]:
    """The store's failures as this project's: FileNotFoundError or StoreFailed."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        if code in _NOT_FOUND:
            raise FileNotFoundError(f"{action}: not found ({code})") from None
        raise StoreFailed(f"{action}: {code} {error.get('Message', '')}".rstrip()) from None
    except _TRANSPORT_ERRORS as exc:
        raise StoreFailed(f"{action}: {str(exc) or type(exc).__name__}") from None


def _read_part(path: Path, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    if len(data) != length:
        raise OSError(f"{path} is shorter than {offset + length} bytes")
    return data


def _raise_failure(parts: list[asyncio.Task[CompletedPartTypeDef]]) -> None:
    for part in parts:
        if part.done() and not part.cancelled() and (failure := part.exception()) is not None:
            raise StoreFailed(str(failure))


class S3Writer:
    """A blob written to a local file and uploaded from it: to its final key as it grows when
    the expected digest is known, else all at once by `commit`."""

    def __init__(self, store: S3Store, path: Path, expected: Digest | None) -> None:
        self._store = store
        self._file = LocalFile(path)
        self._expected = expected
        self._key = store.key(expected) if expected is not None else None
        self._upload: asyncio.Task[str] | None = None
        self._parts: list[asyncio.Task[CompletedPartTypeDef]] = []
        self._handed_over = 0
        self._part_failed = False
        self._committed = False

    @property
    def path(self) -> Path:
        return self._file.path

    @property
    def size(self) -> int:
        return self._file.size

    @property
    def on_disk(self) -> int:
        return self._file.on_disk

    def write(self, data: bytes) -> None:
        if self._file.write(data) and self._key is not None:
            self._upload_parts(self._key, final=False)

    def verify(self, digest: Digest) -> None:
        if self._expected not in (None, digest):
            raise DigestMismatch(digest, "another blob's", self._file.size)
        self._file.verify(digest)

    async def commit(self, digest: Digest) -> StoredBlob:
        assert self._file.open, "commit after close"
        try:
            self.verify(digest)
        except BaseException:
            await self._discard()
            raise
        try:
            await self._upload_rest(self._store.key(digest))
        except BaseException:
            self.abort()  # in the background: the store may be slow to answer, or down
            raise
        self._committed = True
        self._release()
        return StoredBlob(digest, self._file.size, time.time())

    def abort(self) -> None:
        cleanup = self._release()
        if cleanup is not None:
            self._store._in_background(cleanup)

    async def drain(self) -> None:
        """Wait until the full parts written so far are uploaded; StoreFailed if one was not."""
        if self._parts:
            await asyncio.wait(self._parts)
        _raise_failure(self._parts)

    def _upload_parts(self, key: str, *, final: bool) -> None:
        """Hand every full part on disk to an upload task; when `final`, the short last one too."""
        while not self._part_failed and (
            self._file.on_disk - self._handed_over >= PART_SIZE
            or (final and self._handed_over < self._file.on_disk)
        ):
            if self._upload is None:
                self._upload = asyncio.create_task(self._store._create_upload(key))
            length = min(PART_SIZE, self._file.on_disk - self._handed_over)
            number = len(self._parts) + 1
            part = asyncio.create_task(
                self._send_part(self._upload, key, number, self._handed_over, length)
            )
            part.add_done_callback(self._part_done)
            self._parts.append(part)
            self._handed_over += length

    async def _send_part(
        self, upload: asyncio.Task[str], key: str, number: int, offset: int, length: int
    ) -> CompletedPartTypeDef:
        upload_id = await asyncio.shield(upload)
        async with self._store._part_slots:
            if self._part_failed:
                raise StoreFailed("an earlier part failed")
            try:
                body = await asyncio.to_thread(_read_part, self._file.path, offset, length)
            except OSError as exc:
                raise StoreFailed(f"could not read part {number} back: {exc}") from None
            etag = await self._store._upload_part(key, upload_id, number, body)
        return {"PartNumber": number, "ETag": etag}

    def _part_done(self, part: asyncio.Task[CompletedPartTypeDef]) -> None:
        if not part.cancelled() and part.exception() is not None:
            self._part_failed = True

    async def _upload_rest(self, key: str) -> None:
        if self._upload is None and self._file.size < PART_SIZE:
            # Outside the part slots: a manifest must not wait behind the layers.
            body = await asyncio.to_thread(_read_part, self._file.path, 0, self._file.size)
            await self._store._put(key, body)
            return
        self._key = key
        self._upload_parts(key, final=True)
        await asyncio.wait(self._parts, return_when=asyncio.FIRST_EXCEPTION)
        _raise_failure(self._parts)
        assert self._upload is not None and self._handed_over == self._file.size
        parts = [part.result() for part in self._parts]
        await self._store._complete_upload(key, self._upload.result(), parts)

    def _release(self) -> Coroutine[Any, Any, None] | None:
        """Delete the local file and stop uploading; returns the abort of the upload, if any."""
        if self._file.open:
            self._file.discard()
        upload, parts, key = self._upload, self._parts, self._key
        self._upload, self._parts = None, []
        if self._committed or upload is None or key is None:
            return None
        for part in parts:
            part.cancel()
        return self._cancel_upload(upload, parts, key)

    async def _cancel_upload(
        self, upload: asyncio.Task[str], parts: list[asyncio.Task[CompletedPartTypeDef]], key: str
    ) -> None:
        await asyncio.gather(*parts, return_exceptions=True)
        try:
            upload_id = await upload
        except (StoreFailed, FileNotFoundError):
            return
        await self._store._abort_upload(key, upload_id)

    async def _discard(self) -> None:
        cleanup = self._release()
        if cleanup is not None:
            await cleanup


class S3Store:
    """Committed blobs as objects `<prefix>/blobs/sha256/ab/<hex>` in one bucket."""

    def __init__(self, settings: S3Settings, tmp_dir: Path) -> None:
        self.settings = settings
        self._part_slots = asyncio.Semaphore(PART_UPLOADS)
        prefix = settings.prefix.strip("/")
        self._prefix = f"{prefix}/" if prefix else ""
        self._tmp = tmp_dir
        self._client: S3Client | None = None
        self._exit = contextlib.AsyncExitStack()
        self._background: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the client and make sure the bucket exists (creating it if need be)."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        settings = self.settings
        config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=POOL_CONNECTIONS,
            # Checksums beyond what S3 requires break several S3-compatible stores.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client = await self._exit.enter_async_context(
            get_session().create_client(
                "s3",
                region_name=settings.region,
                endpoint_url=settings.endpoint_url,
                aws_access_key_id=settings.access_key,
                aws_secret_access_key=settings.secret_key,
                config=config,
            )
        )
        try:
            await self._ensure_bucket()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Finish the aborts still under way, then close the client."""
        await asyncio.gather(*self._background, return_exceptions=True)
        self._client = None
        await self._exit.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def recover(self, *, older_than: float = STALE_UPLOAD_AGE) -> None:
        """Drop local partial files, and the uploads under the prefix older than `older_than`
        seconds: younger ones may belong to another node still writing."""
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        stale: list[tuple[str, str]] = []
        with _errors("listing uploads"):
            pages = self._s3.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.settings.bucket, Prefix=self._prefix + "blobs/"
            )
            async for page in pages:
                for upload in page.get("Uploads", []):
                    key, upload_id = upload.get("Key"), upload.get("UploadId")
                    initiated = upload.get("Initiated")
                    if key and upload_id and initiated is not None and initiated <= cutoff:
                        stale.append((key, upload_id))
        for key, upload_id in stale:
            await self._abort_upload(key, upload_id)

    # -- reading ---------------------------------------------------------------------------

    def key(self, digest: Digest) -> str:
        return self._prefix + blob_key(digest)

    def local_path(self, digest: Digest) -> None:
        return None

    async def stat(self, digest: Digest) -> StoredBlob | None:
        try:
            with _errors(f"HEAD {digest}"):
                head = await self._s3.head_object(Bucket=self.settings.bucket, Key=self.key(digest))
        except FileNotFoundError:
            return None
        return StoredBlob(digest, head["ContentLength"], head["LastModified"].timestamp())

    async def read(self, digest: Digest) -> bytes:
        with _errors(f"GET {digest}"):
            reply = await self._s3.get_object(Bucket=self.settings.bucket, Key=self.key(digest))
            async with reply["Body"] as body:
                return await body.read()

    async def open_range(self, digest: Digest, start: int, end: int) -> AsyncIterator[bytes]:
        if start >= end:
            return
        sent = 0
        with _errors(f"GET {digest}"):
            reply = await self._s3.get_object(
                Bucket=self.settings.bucket, Key=self.key(digest), Range=f"bytes={start}-{end - 1}"
            )
            async with reply["Body"] as body:
                async for chunk in body.iter_chunks(READ_CHUNK):
                    sent += len(chunk)
                    yield chunk
        if sent != end - start:
            raise StoreFailed(f"{digest} is shorter than {end} bytes")

    async def presigned_url(self, digest: Digest) -> str:
        """A URL that GETs the blob without credentials for `presign_ttl` seconds."""
        with _errors("presigning"):
            return await self._s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.settings.bucket, "Key": self.key(digest)},
                ExpiresIn=round(self.settings.presign_ttl),
            )

    async def iterate(self) -> AsyncIterator[StoredBlob]:
        with _errors("listing blobs"):
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.settings.bucket, Prefix=self._prefix + "blobs/"
            )
            async for page in pages:
                for entry in page.get("Contents", []):
                    digest = self._digest_of(entry.get("Key", ""))
                    if digest is not None and "Size" in entry and "LastModified" in entry:
                        yield StoredBlob(digest, entry["Size"], entry["LastModified"].timestamp())

    async def writable(self) -> bool:
        try:
            with _errors("bucket check"):
                await self._s3.head_bucket(Bucket=self.settings.bucket)
        except (StoreFailed, FileNotFoundError):
            return False
        return True

    # -- writing ---------------------------------------------------------------------------

    def new_writer(self, digest: Digest | None = None) -> S3Writer:
        """A writer; with the digest its bytes should have, it uploads them as they come."""
        return S3Writer(self, self._tmp / uuid.uuid4().hex, digest)

    async def delete(self, digest: Digest) -> None:
        with _errors(f"DELETE {digest}"):
            await self._s3.delete_object(Bucket=self.settings.bucket, Key=self.key(digest))

    async def _put(self, key: str, body: bytes) -> None:
        with _errors(f"PUT {key}"):
            await self._s3.put_object(Bucket=self.settings.bucket, Key=key, Body=body)

    async def _create_upload(self, key: str) -> str:
        with _errors(f"starting the upload of {key}"):
            reply = await self._s3.create_multipart_upload(Bucket=self.settings.bucket, Key=key)
        return reply["UploadId"]

    async def _upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        with _errors(f"uploading part {number} of {key}"):
            reply = await self._s3.upload_part(
                Bucket=self.settings.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
            )
        return reply["ETag"]

    async def _complete_upload(
        self, key: str, upload_id: str, parts: list[CompletedPartTypeDef]
    ) -> None:
        with _errors(f"completing the upload of {key}"):
            await self._s3.complete_multipart_upload(
                Bucket=self.settings.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )

    async def _abort_upload(self, key: str, upload_id: str) -> None:
        """Abort an upload; a failure is only logged, as `recover` retries later."""
        try:
            with _errors(f"aborting the upload of {key}"):
                await self._s3.abort_multipart_upload(
                    Bucket=self.settings.bucket, Key=key, UploadId=upload_id
                )
        except FileNotFoundError:
            pass
        except StoreFailed as exc:
            log.warning("%s", exc)

    def _in_background(self, cleanup: Coroutine[Any, Any, None]) -> None:
        """Run `cleanup` as a task that `close` waits for; without a loop, leave it to recover."""
        try:
            task = asyncio.get_running_loop().create_task(cleanup)
        except RuntimeError:
            cleanup.close()
            return
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- helpers ---------------------------------------------------------------------------

    @property
    def _s3(self) -> S3Client:
        if self._client is None:
            raise RuntimeError("the S3 store is not started")
        return self._client

    async def _ensure_bucket(self) -> None:
        bucket, region = self.settings.bucket, self.settings.region
        try:
            with _errors(f"checking bucket {bucket}"):
                await self._s3.head_bucket(Bucket=bucket)
            return
        except FileNotFoundError:
            pass
        with _errors(f"creating bucket {bucket}"):
            try:
                if region == "us-east-1":
                    await self._s3.create_bucket(Bucket=bucket)
                else:
                    location: Any = {"LocationConstraint": region}
                    await self._s3.create_bucket(Bucket=bucket, CreateBucketConfiguration=location)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                    raise

    def _digest_of(self, key: str) -> Digest | None:
        try:
            digest = Digest.parse(f"sha256:{key.rpartition('/')[2]}")
        except RegistryError:
            return None
        return digest if self.key(digest) == key else None
