"""The storage backends under test: the filesystem, and S3 on a real SeaweedFS."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from regcache.storage import BlobStore, FilesystemStore
from regcache.storage.s3 import S3Settings, S3Store
from regcache.storage.tiered import TieredStore
from tests.support.seaweedfs import SeaweedFS

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

BUCKET = "regcache-tests"


class Backend:
    """A store, and how the conformance suite makes it fail."""

    name: str
    store: BlobStore
    tmp_dir: Path  # where its writers keep their local files

    async def break_store(self) -> None:
        raise NotImplementedError

    async def repair_store(self) -> None:
        raise NotImplementedError


class FilesystemBackend(Backend):
    name = "filesystem"

    def __init__(self, store: FilesystemStore) -> None:
        self.store = store
        self.tmp_dir = store.root / "tmp"
        self._blobs = store.root / "blobs"
        self._away = store.root / "blobs.away"

    async def break_store(self) -> None:
        """A file where the blobs directory was: no blob can be renamed into place."""
        self._blobs.rename(self._away)
        self._blobs.touch()

    async def repair_store(self) -> None:
        self._blobs.unlink()
        self._away.rename(self._blobs)


class S3Backend(Backend):
    name = "s3"

    def __init__(self, store: S3Store, tmp_dir: Path, seaweedfs: SeaweedFS) -> None:
        self.store = store
        self.tmp_dir = tmp_dir
        self._seaweedfs = seaweedfs

    async def break_store(self) -> None:
        """SeaweedFS stopped (killed)."""
        await asyncio.to_thread(self._seaweedfs.stop)

    async def repair_store(self) -> None:
        """SeaweedFS started again, with the same ports and data."""
        await asyncio.to_thread(self._seaweedfs.start)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


def s3_settings(seaweedfs: SeaweedFS, bucket: str = BUCKET) -> S3Settings:
    """Settings for `bucket`, under a prefix of its own: tests share the bucket, not blobs."""
    return S3Settings(
        bucket,
        prefix=f"test-{uuid.uuid4().hex[:12]}",
        endpoint_url=seaweedfs.endpoint_url,
        region=seaweedfs.region,
        access_key=seaweedfs.access_key,
        secret_key=seaweedfs.secret_key,
    )


@pytest.fixture
async def s3_store(seaweedfs: SeaweedFS, tmp_path: Path) -> AsyncIterator[S3Store]:
    async with S3Store(s3_settings(seaweedfs), tmp_path / "s3-tmp") as store:
        await store.recover()
        yield store


@pytest.fixture
async def s3_admin(seaweedfs: SeaweedFS) -> AsyncIterator[S3Client]:
    """A plain S3 client on the same SeaweedFS, to look behind a store's back."""
    async with get_session().create_client(
        "s3",
        region_name=seaweedfs.region,
        endpoint_url=seaweedfs.endpoint_url,
        aws_access_key_id=seaweedfs.access_key,
        aws_secret_access_key=seaweedfs.secret_key,
        config=AioConfig(s3={"addressing_style": "path"}),
    ) as client:
        yield client


@pytest.fixture
async def filesystem_backend(tmp_path: Path) -> FilesystemBackend:
    store = FilesystemStore(tmp_path / "fs")
    await store.recover()
    return FilesystemBackend(store)


@pytest.fixture
async def s3_backend(s3_store: S3Store, seaweedfs: SeaweedFS, tmp_path: Path) -> S3Backend:
    return S3Backend(s3_store, tmp_path / "s3-tmp", seaweedfs)


class TieredBackend(S3Backend):
    name = "tiered"


@pytest.fixture
async def tiered_backend(s3_store: S3Store, seaweedfs: SeaweedFS, tmp_path: Path) -> TieredBackend:
    """S3 with a node's local disk cache in front."""
    local = FilesystemStore(tmp_path / "local")
    await local.recover()
    tiered = TieredBackend(s3_store, tmp_path / "s3-tmp", seaweedfs)
    tiered.store = TieredStore(s3_store, local, budget=64 * 1024 * 1024)
    return tiered


@pytest.fixture(params=["filesystem", "s3", "tiered"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each backend in turn; SeaweedFS is started only when an S3 test runs."""
    chosen: Backend = request.getfixturevalue(f"{request.param}_backend")
    return chosen
