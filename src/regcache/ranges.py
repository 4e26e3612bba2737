"""HTTP Range requests on blobs (RFC 9110 byte ranges, one range at a time)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from regcache.errors import RangeInvalid

_SPEC = re.compile(r"(\d*)-(\d*)")


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


def unsatisfiable(size: int, reason: str) -> RangeInvalid:
    return RangeInvalid(reason, headers={"Content-Range": f"bytes */{size}"})


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range a client asked for within a blob of `size` bytes.

    None means the whole blob (no Range, or several ranges, which a server may ignore).
    A malformed or unsatisfiable range raises RangeInvalid (416), as the registry does.
    """
    if header is None:
        return None
    unit, sep, specs = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        raise unsatisfiable(size, "only byte ranges are supported")
    parts = [part.strip() for part in specs.split(",")]
    if len(parts) > 1:
        return None
    match = _SPEC.fullmatch(parts[0])
    if match is None or (not match[1] and not match[2]):
        raise unsatisfiable(size, "malformed range")
    first, last = match[1], match[2]
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise unsatisfiable(size, "range not satisfiable")
        return ByteRange(max(size - suffix, 0), size)
    start = int(first)
    if last and int(last) < start:
        raise unsatisfiable(size, "malformed range")
    if start >= size:
        raise unsatisfiable(size, "range not satisfiable")
    end = min(int(last) + 1, size) if last else size
    return ByteRange(start, end)
