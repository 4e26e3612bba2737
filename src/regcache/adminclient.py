"""The command line's side of the admin API: where it is, its token, and the requests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from regcache.config import Settings

TIMEOUT = 30.0


class AdminError(Exception):
    """The admin API could not be reached or refused the request."""


@dataclass(frozen=True)
class AdminClient:
    url: str
    token: str | None

    @classmethod
    def for_settings(
        cls, settings: Settings, url: str | None = None, token: str | None = None
    ) -> AdminClient:
        if url is None:
            if settings.admin_host is None:
                raise AdminError("the admin listener is off (admin.listen); give --admin-url")
            host = settings.admin_host
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            url = f"http://{host}:{settings.admin_port}"
        if token is None and settings.admin_token is not None:
            token = settings.admin_token.reveal()
        if token is None:
            try:
                token = (settings.cache_dir / "admin.token").read_text().strip()
            except OSError:
                token = None
        return cls(url.rstrip("/"), token)

    def get(self, path: str) -> Any:
        with self._open("GET", path) as response:
            return json.load(response)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        with self._open("POST", path, body) as response:
            return json.load(response)

    def stream(self, path: str, body: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """A POST answered with JSON lines, one event each, as they come."""
        with self._open("POST", path, body, timeout=None) as response:
            for line in response:
                if line.strip():
                    yield json.loads(line)

    def _open(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        timeout: float | None = TIMEOUT,
    ) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token and method == "POST":
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body or {}).encode() if method == "POST" else None
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise AdminError(f"{method} {path}: {exc.code} {detail}".strip()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AdminError(f"cannot reach the admin API at {self.url}: {reason}") from None
