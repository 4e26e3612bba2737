"""A real ``redis-server`` (Debian package redis-server) for tests of the shared index.

It listens on 127.0.0.1 at a free port, keeps nothing on disk (no RDB snapshots, no AOF) and
runs in ``workdir``; its log goes to ``workdir/redis.stderr.log``.
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import TracebackType
from typing import Self

from .ports import free_port
from .process import Process, ProcessError

REDIS_SERVER = "/usr/bin/redis-server"
_PORT_ATTEMPTS = 3


class RedisServer:
    """``redis-server`` at ``url``; after ``stop``, ``start`` runs it again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self._started = False
        self.process = Process("redis", [], workdir)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(_PORT_ATTEMPTS):
            self.process.argv = self._argv()
            self.process.start()
            try:
                self.process.wait_until(self._serving, what="serving")
                self._started = True
                return
            except ProcessError as exc:
                self.process.stop()
                lost_port_race = "Address already in use" in str(exc)
                if self._started or not lost_port_race or attempt == _PORT_ATTEMPTS - 1:
                    raise
                self.port = free_port()
            except BaseException:
                self.process.stop()
                raise

    def stop(self) -> None:
        self.process.stop()

    def ping(self) -> bool:
        """Whether the server answers PING (a RESP inline command) with PONG."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64) == b"+PONG\r\n"
        except OSError:
            return False

    def logs(self) -> str:
        return self.process.logs()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _argv(self) -> list[str]:
        return [
            REDIS_SERVER,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "/dev/stderr",
        ]

    def _serving(self) -> bool:
        # Only trust PONG once this process has bound the port: another server may hold it.
        ready = "Ready to accept connections" in self.process.stderr_since_start()
        return ready and self.ping()
