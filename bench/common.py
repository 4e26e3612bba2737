"""What the scenarios share: error handling, sizes, and which systems apply where."""

from __future__ import annotations

from bench.clients import ClientError
from bench.images import Image
from bench.procs import ProcessError
from bench.systems import DISTRIBUTION, REGCACHE, SQUID_SYS

FAILURES = (ProcessError, ClientError, TimeoutError, OSError)
"""What a system can fail with in one run: noted in its table, the run goes on."""
BLOB_TIMEOUT = 600.0

SINGLE_CLIENT_CACHES = (REGCACHE, DISTRIBUTION, SQUID_SYS)
NO_COLLAPSING = (
    "squid-cf is left out here: collapsed forwarding only changes what happens when several "
    "clients ask for the same missing object at once (S3)."
)


def size_text(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.4g} {unit}"
    return f"{size} B"


def blob_path(image: Image) -> str:
    return f"/v2/{image.name}/blobs/{image.largest.digest}"


def short_error(exc: BaseException) -> str:
    """The first line of an error and the end of the rest (where a traceback says what broke)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"[:200]
    rest = " | ".join(lines[1:])
    return f"{text} ... {rest[-300:]}" if rest else text
