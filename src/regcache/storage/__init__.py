"""Where content bytes live. The cache talks to the `BlobStore` interface only."""

from regcache.storage.base import BlobStore, BlobWriter, DigestMismatch, StoredBlob, StoreFailed
from regcache.storage.filesystem import FilesystemStore

__all__ = [
    "BlobStore",
    "BlobWriter",
    "DigestMismatch",
    "FilesystemStore",
    "StoreFailed",
    "StoredBlob",
]
