"""regcache itself, run as the real command in a child process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.process import wait_for

READY = re.compile(r"regcache listening on (https?)://([\d.]+):(\d+)")
ADMIN_READY = re.compile(r"regcache admin listening on (http://[\d.]+:\d+)")
START_TIMEOUT = 30.0


@dataclass
class Regcache:
    cache_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    url: str = ""
    admin_url: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def admin_token(self) -> str:
        return (self.cache_dir / "admin.token").read_text().strip()

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def settle(self, timeout: float = 30.0) -> None:
        """Wait (bounded) until no download is under way: what clients got is kept by then.

        A client gets its last byte once the bytes matched their digest, a moment before they
        are synced and renamed into place.
        """

        def idle() -> bool:
            stats = json.loads(urllib.request.urlopen(self.admin_url + "/api/stats").read())
            return not stats["downloads"]

        wait_for(idle, timeout=timeout, what="the downloads to be kept")

    def kill(self) -> None:
        """`kill -9`: no cleanup of any kind."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def start_regcache(
    upstream: str | None,
    cache_dir: Path,
    *,
    args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    log_name: str = "regcache.log",
) -> Regcache:
    """Start `regcache serve` on a free port of 127.0.0.1 and wait until it listens."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    log_path = cache_dir.parent / log_name
    command = [
        sys.executable, "-m", "regcache", "serve",
        "--listen", "127.0.0.1:0",
        "--admin-listen", "127.0.0.1:0",
        *(["--upstream", upstream] if upstream else []),
        "--cache-dir", str(cache_dir),
        *args,
    ]  # fmt: skip
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("REGCACHE_")}
    child_env.update(env or {})
    log_file = log_path.open("ab")
    process = subprocess.Popen(command, stdout=log_file, stderr=log_file, env=child_env)
    log_file.close()
    server = Regcache(cache_dir, log_path, process)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        log = server.log()
        match, admin = READY.search(log), ADMIN_READY.search(log)
        if match and admin:
            server.url = f"{match[1]}://{match[2]}:{match[3]}"
            server.admin_url = admin[1]
            return server
        if process.poll() is not None:
            break
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"regcache did not start:\n{server.log()}")


@contextmanager
def running_regcache(upstream: str | None, cache_dir: Path, **kwargs: object) -> Iterator[Regcache]:
    server = start_regcache(upstream, cache_dir, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
