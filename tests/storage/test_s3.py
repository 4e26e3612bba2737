"""What the S3 backend does beyond the conformance suite: uploads as the bytes come, aborts what
it does not keep, signs URLs, and fails loudly on credentials or buckets that do not work."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest

from regcache.storage import DigestMismatch, StoreFailed
from regcache.storage.s3 import PART_SIZE, S3Store
from tests.storage.conftest import BUCKET, s3_settings
from tests.storage.test_conformance import MIB, content, leftovers, listed, write_in_chunks
from tests.support.seaweedfs import SeaweedFS

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import MultipartUploadTypeDef


async def uploads(admin: S3Client, store: S3Store) -> list[MultipartUploadTypeDef]:
    """The multipart uploads under way below the store's prefix."""
    reply = await admin.list_multipart_uploads(Bucket=BUCKET, Prefix=store.settings.prefix)
    return reply.get("Uploads", [])


async def test_parts_are_uploaded_while_the_blob_is_written(
    s3_store: S3Store, s3_admin: S3Client
) -> None:
    data, digest = content(2 * PART_SIZE + 5)
    writer = s3_store.new_writer(digest)
    write_in_chunks(writer, data)
    await writer.drain()

    [upload] = await uploads(s3_admin, s3_store)
    assert upload.get("Key") == s3_store.key(digest)
    parts = await s3_admin.list_parts(
        Bucket=BUCKET, Key=s3_store.key(digest), UploadId=upload.get("UploadId", "")
    )
    assert [part.get("Size") for part in parts.get("Parts", [])] == [PART_SIZE, PART_SIZE]
    assert await s3_store.stat(digest) is None
    assert await listed(s3_store) == {}

    await writer.commit(digest)
    assert await uploads(s3_admin, s3_store) == []
    assert await s3_store.read(digest) == data


@pytest.mark.parametrize("size", [1000, 2 * PART_SIZE + 5])
async def test_a_writer_without_the_digest_uploads_at_commit(
    s3_store: S3Store, s3_admin: S3Client, size: int
) -> None:
    data, digest = content(size)
    writer = s3_store.new_writer()
    write_in_chunks(writer, data)
    await writer.drain()
    assert await uploads(s3_admin, s3_store) == []

    stored = await writer.commit(digest)
    assert stored.size == size
    assert await s3_store.read(digest) == data
    assert await uploads(s3_admin, s3_store) == []


async def test_abort_aborts_the_upload(s3_store: S3Store, s3_admin: S3Client) -> None:
    data, digest = content(20 * MIB)
    writer = s3_store.new_writer(digest)
    write_in_chunks(writer, data)
    await writer.drain()
    assert len(await uploads(s3_admin, s3_store)) == 1

    writer.abort()
    await s3_store.close()  # waits for the aborts under way

    assert await uploads(s3_admin, s3_store) == []


async def test_a_digest_mismatch_aborts_the_upload(s3_store: S3Store, s3_admin: S3Client) -> None:
    data, _ = content(20 * MIB)
    _, wrong = content(20 * MIB, seed=1)
    writer = s3_store.new_writer(wrong)
    write_in_chunks(writer, data)
    await writer.drain()
    with pytest.raises(DigestMismatch):
        await writer.commit(wrong)
    assert await uploads(s3_admin, s3_store) == []


async def test_a_commit_for_another_digest_than_expected_is_a_mismatch(s3_store: S3Store) -> None:
    data, digest = content(1000)
    _, other = content(1000, seed=1)
    writer = s3_store.new_writer(other)
    writer.write(data)
    with pytest.raises(DigestMismatch):
        await writer.commit(digest)
    assert await listed(s3_store) == {}


async def test_recover_aborts_only_stale_uploads(s3_store: S3Store, s3_admin: S3Client) -> None:
    _, digest = content(10)
    await s3_admin.create_multipart_upload(Bucket=BUCKET, Key=s3_store.key(digest))

    await s3_store.recover()
    assert len(await uploads(s3_admin, s3_store)) == 1  # it may be another node's, still writing

    await s3_store.recover(older_than=0)
    assert await uploads(s3_admin, s3_store) == []


async def test_a_presigned_url_serves_the_blob_without_credentials(
    s3_store: S3Store, seaweedfs: SeaweedFS
) -> None:
    data, digest = content(3 * MIB)
    writer = s3_store.new_writer(digest)
    write_in_chunks(writer, data)
    await writer.commit(digest)

    url = await s3_store.presigned_url(digest)

    assert seaweedfs.secret_key not in url
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 200
            assert await response.read() == data
        async with http.get(url.partition("?")[0]) as response:
            assert response.status == 403  # the bucket is not public: the signature matters


async def test_wrong_credentials_are_refused(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    settings = dataclasses.replace(s3_settings(seaweedfs), secret_key="not-the-secret")
    store = S3Store(settings, tmp_path)
    with pytest.raises(StoreFailed) as failure:
        await store.start()
    assert "not-the-secret" not in str(failure.value)
    assert "not-the-secret" not in repr(settings)


async def test_start_creates_the_bucket(
    seaweedfs: SeaweedFS, s3_admin: S3Client, tmp_path: Path
) -> None:
    bucket = f"regcache-new-{uuid.uuid4().hex[:8]}"
    async with S3Store(s3_settings(seaweedfs, bucket), tmp_path) as store:
        assert await store.writable()
    await s3_admin.head_bucket(Bucket=bucket)
    await s3_admin.delete_bucket(Bucket=bucket)


async def test_a_bucket_that_is_gone_fails_the_commit(
    seaweedfs: SeaweedFS, s3_admin: S3Client, tmp_path: Path
) -> None:
    bucket = f"regcache-gone-{uuid.uuid4().hex[:8]}"
    async with S3Store(s3_settings(seaweedfs, bucket), tmp_path) as store:
        await s3_admin.delete_bucket(Bucket=bucket)
        assert not await store.writable()
        data, digest = content(20 * MIB)
        writer = store.new_writer(digest)
        write_in_chunks(writer, data)  # never raises

        with pytest.raises(StoreFailed):
            await writer.commit(digest)

        assert await store.stat(digest) is None
        with pytest.raises(StoreFailed):
            await listed(store)
        assert leftovers(tmp_path) == []
