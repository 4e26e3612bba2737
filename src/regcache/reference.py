"""Repository names, tags and digests as the distribution spec defines them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from regcache.errors import DigestInvalid, NameInvalid, TagInvalid

# From the OCI distribution spec: path components separated by "/".
_NAME = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_SHA256_HEX = re.compile(r"[a-f0-9]{64}")
MAX_NAME_LENGTH = 255


def validate_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise NameInvalid("invalid repository name", detail={"name": name[:MAX_NAME_LENGTH]})
    return name


def validate_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise TagInvalid("invalid tag", detail={"tag": tag[:128]})
    return tag


@dataclass(frozen=True, slots=True)
class Digest:
    """A sha256 content digest: the only algorithm regcache stores content under."""

    hex: str

    @property
    def algorithm(self) -> str:
        return "sha256"

    def __str__(self) -> str:
        return f"sha256:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        if not _DIGEST.fullmatch(text):
            raise DigestInvalid("invalid digest", detail={"digest": text[:100]})
        algorithm, _, encoded = text.partition(":")
        if algorithm != "sha256":
            raise DigestInvalid(
                "unsupported digest algorithm", detail={"digest": text[:100]}, status=400
            )
        if not _SHA256_HEX.fullmatch(encoded):
            raise DigestInvalid("invalid sha256 digest", detail={"digest": text[:100]})
        return cls(encoded)


def is_digest(reference: str) -> bool:
    return ":" in reference
