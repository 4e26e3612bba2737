"""The client side: talking to an upstream registry, with its auth, redirects and errors."""

from regcache.upstream.client import BlobResponse, ManifestHead, ManifestResponse, UpstreamClient
from regcache.upstream.credentials import Credentials

__all__ = ["BlobResponse", "Credentials", "ManifestHead", "ManifestResponse", "UpstreamClient"]
