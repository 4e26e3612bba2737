"""The configured storage, index and cluster coordination, opened and closed together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from regcache.config import Settings
from regcache.index import Index, SqliteIndex
from regcache.storage import BlobStore, FilesystemStore

if TYPE_CHECKING:  # S3 and Redis need the optional clients: imported only when configured
    from regcache.cluster import Cluster


@dataclass
class Backends:
    store: BlobStore
    index: Index
    cluster: Cluster | None


@asynccontextmanager
async def open_backends(settings: Settings) -> AsyncIterator[Backends]:
    async with AsyncExitStack() as stack:
        store: BlobStore
        if settings.storage_backend == "s3":
            from regcache.storage.s3 import S3Settings, S3Store

            s3 = settings.s3
            secret = s3.get("secret_key")
            s3_store = S3Store(
                S3Settings(
                    bucket=s3["bucket"],
                    prefix=s3.get("prefix", ""),
                    endpoint_url=s3.get("endpoint"),
                    region=s3.get("region", "us-east-1"),
                    access_key=s3.get("access_key"),
                    secret_key=secret.reveal() if secret is not None else None,
                    presign_ttl=s3.get("presign_ttl", 300.0),
                ),
                settings.cache_dir / "tmp",
            )
            await s3_store.start()
            stack.push_async_callback(s3_store.close)
            store = s3_store
            if settings.local_cache_size > 0:
                from regcache.storage.tiered import TieredStore

                local = FilesystemStore(settings.cache_dir / "local")
                store = TieredStore(s3_store, local, settings.local_cache_size)
        else:
            store = FilesystemStore(settings.cache_dir)
        index: Index
        cluster: Cluster | None = None
        if settings.index_backend == "redis" and settings.redis_url:
            from regcache.cluster import Cluster
            from regcache.index.redis import RedisIndex

            index = RedisIndex(settings.redis_url, settings.redis_prefix)
            cluster = Cluster(settings.redis_url, settings.redis_prefix, lock_ttl=settings.lock_ttl)
            stack.push_async_callback(cluster.close)
        else:
            index = SqliteIndex(settings.cache_dir / "index.sqlite3")
        yield Backends(store, index, cluster)
