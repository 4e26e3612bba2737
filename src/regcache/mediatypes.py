"""Manifest media types and the Accept negotiation a registry performs."""

from __future__ import annotations

import json

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

MANIFEST_TYPES = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX)
DOCKER_TYPES = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
OCI_TYPES = (OCI_MANIFEST, OCI_INDEX)
BLOB_TYPE = "application/octet-stream"


def parse_accept(values: list[str]) -> set[str]:
    """The media types named in one or more Accept headers, parameters and q-values dropped."""
    accepted: set[str] = set()
    for value in values:
        for part in value.split(","):
            media_type = part.split(";", 1)[0].strip().lower()
            if media_type:
                accepted.add(media_type)
    return accepted


def acceptable(media_type: str, accepted: set[str]) -> bool:
    """Whether a stored manifest of `media_type` may be given to a client that sent `accepted`.

    A client that sends no Accept gets the Docker types only, as a registry does; OCI types
    need to be named (or a wildcard), so a Docker-only client never receives an OCI manifest.
    """
    if not accepted:
        return media_type in DOCKER_TYPES
    if media_type in accepted or "*/*" in accepted:
        return True
    return media_type.split("/", 1)[0] + "/*" in accepted


def upstream_accept(accepted: set[str]) -> str:
    """The Accept header to send upstream on a client's behalf."""
    if not accepted or "*/*" in accepted:
        return ", ".join(MANIFEST_TYPES)
    return ", ".join(sorted(accepted))


def sniff_media_type(body: bytes) -> str | None:
    """The mediaType a manifest declares, or what its shape implies when it declares none."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    declared = doc.get("mediaType")
    if isinstance(declared, str):
        return declared
    if "manifests" in doc:
        return OCI_INDEX
    if "layers" in doc:
        return OCI_MANIFEST
    return None
