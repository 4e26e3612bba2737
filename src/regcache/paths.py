"""Which registry endpoint a request path names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from regcache.errors import NameUnknown, RegistryError, Unsupported
from regcache.reference import validate_name, validate_tag


class Endpoint(StrEnum):
    BASE = "base"
    MANIFEST = "manifest"
    BLOB = "blob"
    TAGS = "tags"
    UPLOAD = "upload"
    CATALOG = "catalog"
    REFERRERS = "referrers"


@dataclass(frozen=True, slots=True)
class Route:
    endpoint: Endpoint
    name: str = ""
    reference: str = ""


_PATTERNS = (
    (Endpoint.UPLOAD, re.compile(r"(?P<name>.+)/blobs/uploads(?:/(?P<ref>.*))?")),
    (Endpoint.MANIFEST, re.compile(r"(?P<name>.+)/manifests/(?P<ref>[^/]+)")),
    (Endpoint.BLOB, re.compile(r"(?P<name>.+)/blobs/(?P<ref>[^/]+)")),
    (Endpoint.TAGS, re.compile(r"(?P<name>.+)/tags/list")),
    (Endpoint.REFERRERS, re.compile(r"(?P<name>.+)/referrers/(?P<ref>[^/]+)")),
)


def parse_path(path: str) -> Route:
    """Parse a path below /v2/; names and tags are validated, digests are left to the caller."""
    if path in ("", "/"):
        return Route(Endpoint.BASE)
    if path == "_catalog":
        return Route(Endpoint.CATALOG)
    for endpoint, pattern in _PATTERNS:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        name = validate_name(match["name"])
        reference = match.groupdict().get("ref") or ""
        if endpoint is Endpoint.MANIFEST and ":" not in reference:
            validate_tag(reference)
        return Route(endpoint, name, reference)
    raise NameUnknown("no such endpoint in the registry v2 API", detail={"path": path[:256]})


def v1_error() -> RegistryError:
    return Unsupported(
        "regcache serves the registry v2 API only; the v1 API is not supported", status=404
    )
