"""User name and password pairs, for the upstream or passed through from a client."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    @property
    def identity(self) -> str:
        """A stable key for caches that must not hold the secret itself."""
        raw = f"{self.username}\0{self.password}".encode()
        return hashlib.sha256(raw).hexdigest()

    @classmethod
    def from_basic_header(cls, header: str | None) -> Credentials | None:
        if not header:
            return None
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, sep, password = decoded.partition(":")
        if not sep or not (username or password):
            return None  # clients with nothing to send send ":" after a Basic challenge
        return cls(username, password)
