"""A real ``redis-server`` (Debian package redis-server) for tests of the shared index.

It listens on 127.0.0.1 at a free port, keeps nothing on disk (no RDB snapshots, no AOF) and
runs in ``workdir``; its log goes to ``workdir/redis.stderr.log``.
"""

from __future__ import annotations

import socket
from pathlib import Path

from .ports import free_port
from .process import Process, Service, start_on_free_ports

REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer(Service):
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
        start_on_free_ports(self._start_once, self.process.stop, self._new_port,
                            restart=self._started)  # fmt: skip
        self._started = True

    def _start_once(self) -> None:
        self.process.argv = self._argv()
        self.process.start()
        self.process.wait_until(self._serving, what="serving")

    def _new_port(self) -> None:
        self.port = free_port()

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
