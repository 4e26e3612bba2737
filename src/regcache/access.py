"""Who may read cached content of a repository.

A repository the default identity (anonymous, or the configured service account) can read is
open to every client of the cache: hits cost nothing. Otherwise a client's right to it must have
been confirmed with the upstream, using that client's credentials, within `confirm_ttl` seconds.
Refusals are never remembered.
"""

from __future__ import annotations

import time


class AccessCache:
    def __init__(self, confirm_ttl: float = 60.0) -> None:
        self.confirm_ttl = confirm_ttl
        self._open: set[str] = set()
        self._confirmed: dict[tuple[str, str], float] = {}

    def is_open(self, repository: str) -> bool:
        return repository in self._open

    def mark_open(self, repository: str) -> None:
        self._open.add(repository)

    def allowed(self, identity: str, repository: str) -> bool:
        if repository in self._open:
            return True
        expires = self._confirmed.get((identity, repository))
        return expires is not None and expires > time.monotonic()

    def confirm(self, identity: str, repository: str, *, is_default: bool) -> None:
        if is_default:
            self._open.add(repository)
        else:
            self._confirmed[(identity, repository)] = time.monotonic() + self.confirm_ttl

    def revoke(self, identity: str, repository: str) -> None:
        self._confirmed.pop((identity, repository), None)
