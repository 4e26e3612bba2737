"""Authenticating clients of the cache itself against an htpasswd file of bcrypt hashes."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import bcrypt

from regcache.errors import CLIENT_CHALLENGE, Unauthorized
from regcache.upstream.credentials import Credentials

# bcrypt is slow on purpose: a verified header is remembered this long.
VERIFIED_TTL = 300.0


class HtpasswdError(Exception):
    pass


def read_htpasswd(path: Path) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not hashed.startswith(("$2y$", "$2b$", "$2a$")):
            raise HtpasswdError(
                f"{path}:{number}: only bcrypt entries (user:$2y$...) are supported"
            )
        users[user] = hashed.encode()
    return users


class Htpasswd:
    def __init__(self, users: dict[str, bytes]) -> None:
        self._users = users
        self._verified: dict[str, float] = {}

    async def check(self, header: str | None) -> None:
        """Return if `header` carries valid Basic credentials, else raise Unauthorized."""
        credentials = Credentials.from_basic_header(header)
        if credentials is None:
            raise Unauthorized("authentication required", headers=CLIENT_CHALLENGE)
        key = hashlib.sha256((header or "").encode()).hexdigest()
        if self._verified.get(key, 0.0) > time.monotonic():
            return
        hashed = self._users.get(credentials.username)
        ok = hashed is not None and await asyncio.to_thread(
            bcrypt.checkpw, credentials.password.encode(), hashed
        )
        if not ok:
            raise Unauthorized("invalid user name or password", headers=CLIENT_CHALLENGE)
        self._verified[key] = time.monotonic() + VERIFIED_TTL
