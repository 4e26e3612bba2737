"""The OCI distribution error codes and the exceptions that carry them to the API boundary."""

from __future__ import annotations

import json
from typing import Any

# What a client is challenged with: it answers with Basic credentials, which regcache then uses
# for the upstream's own flow (Basic or Bearer token) on the client's behalf.
CLIENT_CHALLENGE = {"WWW-Authenticate": 'Basic realm="regcache"'}


class RegistryError(Exception):
    """An error a client sees as `{"errors": [{"code", "message", "detail"}]}` and a status."""

    code = "UNKNOWN"
    status = 500

    def __init__(
        self,
        message: str,
        *,
        detail: Any = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return json.dumps({"errors": [entry]}).encode()


class BlobUnknown(RegistryError):
    code, status = "BLOB_UNKNOWN", 404


class ManifestUnknown(RegistryError):
    code, status = "MANIFEST_UNKNOWN", 404


class NameUnknown(RegistryError):
    code, status = "NAME_UNKNOWN", 404


class NameInvalid(RegistryError):
    code, status = "NAME_INVALID", 400


class DigestInvalid(RegistryError):
    code, status = "DIGEST_INVALID", 400


class TagInvalid(RegistryError):
    code, status = "TAG_INVALID", 400


class RangeInvalid(RegistryError):
    code, status = "RANGE_INVALID", 416


class Unauthorized(RegistryError):
    code, status = "UNAUTHORIZED", 401


class Denied(RegistryError):
    code, status = "DENIED", 403


class Unsupported(RegistryError):
    code, status = "UNSUPPORTED", 405


class TooManyRequests(RegistryError):
    code, status = "TOOMANYREQUESTS", 429


class UpstreamUnavailable(RegistryError):
    """The upstream could not be reached or failed, and the cache has nothing to answer with."""

    code, status = "UNAVAILABLE", 503


class StorageUnavailable(RegistryError):
    """The cache's own storage or index failed; nothing was served from it."""

    code, status = "UNAVAILABLE", 503


class UpstreamBadResponse(RegistryError):
    """The upstream answered with something the cache cannot use (wrong digest, bad body)."""

    code, status = "UPSTREAM_ERROR", 502


_BY_CODE: dict[str, type[RegistryError]] = {
    cls.code: cls
    for cls in (
        BlobUnknown,
        ManifestUnknown,
        NameUnknown,
        NameInvalid,
        DigestInvalid,
        TagInvalid,
        RangeInvalid,
        Unauthorized,
        Denied,
        Unsupported,
        TooManyRequests,
    )
}


def from_upstream(status: int, body: bytes, headers: dict[str, str]) -> RegistryError:
    """Rebuild the error an upstream registry sent, keeping its code, message and status."""
    code, message, detail = "UNKNOWN", f"upstream answered {status}", None
    try:
        first = json.loads(body)["errors"][0]
        code = str(first.get("code", code))
        message = str(first.get("message", message))
        detail = first.get("detail")
    except (ValueError, KeyError, IndexError, TypeError):
        pass
    cls = _BY_CODE.get(code, RegistryError)
    err = cls(message, detail=detail, status=status, headers=headers)
    if cls is RegistryError:
        err.code = code
    return err
