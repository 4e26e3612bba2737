"""The upstream: a real CNCF distribution registry, and what its access log says it sent.

Distribution 2.8 writes its access log (Apache combined format) to stdout, one line per request
when the response has been sent, and its application log to stderr. A line is written only once
a transfer is over, so `wait_quiet` first waits until the process has written nothing (no socket
writes, no log lines) for a while; after that the log holds every request so far.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import Service, free_port, http_status

REGISTRY = "/usr/bin/docker-registry"
QUIET_FOR = 0.3
QUIET_TIMEOUT = 300.0

_ACCESS = re.compile(
    r'^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" '
    r"(?P<status>\d{3}) (?P<bytes>\d+|-) "
)
_BLOB = re.compile(r"^/v2/.+/blobs/sha256:[0-9a-f]{64}$")
_LISTENING = re.compile(r"listening on (\S+):(\d+)")


@dataclass(frozen=True)
class Traffic:
    """What the upstream served between a mark and now."""

    blob_bytes: int = 0
    blob_gets: int = 0
    requests: int = 0


def registry_config(addr: str, data_dir: Path, *, log_level: str, access_log: bool) -> str:
    """A distribution config (JSON is valid YAML) with filesystem storage."""
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {
            "level": log_level,
            "formatter": "text",
            "accesslog": {"disabled": not access_log},
        },
        "storage": {
            "filesystem": {"rootdirectory": str(data_dir)},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": addr, "secret": secrets.token_hex(16)},
    }
    return json.dumps(config, indent=2)


class Upstream:
    """`docker-registry serve` on 127.0.0.1 (or on an address inside the namespace `netns`)."""

    def __init__(self, workdir: Path, *, host: str = "127.0.0.1", netns: str | None = None) -> None:
        self.workdir = workdir
        self.host = host
        self.netns = netns
        self.port = free_port() if netns is None else 5000
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "config.yml"
        argv = [REGISTRY, "serve", str(self.config_path)]
        self.service = Service("upstream", argv, workdir, netns=netns)
        self._quiet_at = -1

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> None:
        self.config_path.write_text(
            registry_config(self.address, self.workdir / "data", log_level="info", access_log=True)
        )
        self.service.start()
        try:
            self.service.wait_ready(self._ready, what="listening")
        except BaseException:
            self.service.stop()
            raise

    def stop(self) -> None:
        self.service.stop()

    def _ready(self) -> bool:
        if self.netns is not None:  # not reachable from here: trust its own word
            text = self.service.stderr_path.read_text(errors="replace")
            return _LISTENING.search(text) is not None
        return http_status(self.host, self.port) == 200

    # -- traffic -------------------------------------------------------------------------------

    def mark(self) -> int:
        """A position in the access log; `traffic_since` counts what comes after it."""
        if self._written() != self._quiet_at:  # something happened since the last quiet check
            self.wait_quiet(quiet_for=0.3)
        return self.service.stdout_path.stat().st_size

    def traffic_since(self, mark: int) -> Traffic:
        self.wait_quiet()
        with self.service.stdout_path.open("rb") as log:
            log.seek(mark)
            text = log.read().decode(errors="replace")
        blob_bytes = blob_gets = requests = 0
        for line in text.splitlines():
            match = _ACCESS.match(line)
            if match is None:
                continue
            requests += 1
            if match["method"] == "GET" and _BLOB.match(match["path"]):
                blob_gets += 1
                size = match["bytes"]
                blob_bytes += 0 if size == "-" else int(size)
        return Traffic(blob_bytes, blob_gets, requests)

    def wait_quiet(self, quiet_for: float = QUIET_FOR, timeout: float = QUIET_TIMEOUT) -> None:
        """Wait until the registry has written nothing (sockets or logs) for `quiet_for` s."""
        deadline = time.monotonic() + timeout
        last = self._written()
        since = time.monotonic()
        while time.monotonic() - since < quiet_for:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the upstream kept sending for {timeout:.0f} s")
            time.sleep(0.1)
            now = self._written()
            if now != last:
                last, since = now, time.monotonic()
        self._quiet_at = last

    def _written(self) -> int:
        """Bytes the registry process has written so far (sockets included, as it uses write())."""
        with open(f"/proc/{self.service.pid}/io") as io:
            for line in io:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
        raise RuntimeError("no wchar in /proc/PID/io")
