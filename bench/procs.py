"""Child processes of the benchmark: each in its own session, logged to files, always stopped."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

POLL = 0.05
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


class ProcessError(RuntimeError):
    """A process failed to start, died early, did not become ready, or a command failed."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except FileNotFoundError:
        return ""


def wait_for(
    predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = POLL
) -> None:
    """Poll `predicate` until it holds; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def http_status(host: str, port: int, path: str = "/v2/", timeout: float = 5.0) -> int | None:
    """The status of GET `path`, or None when nothing answers."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "regcache-bench-probe"})
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


class Service:
    """A long-running child with stdout/stderr in `<log_dir>/<name>.{out,err}.log`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        netns: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.stop_signal = stop_signal
        prefix = ["ip", "netns", "exec", netns] if netns else []
        self.argv = prefix + [os.fspath(arg) for arg in argv]
        self.env = dict(env) if env is not None else None
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = log_dir / f"{name}.out.log"
        self.stderr_path = log_dir / f"{name}.err.log"
        self._popen: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise ProcessError(f"{self.name} is not started")
        return self._popen.pid

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> None:
        if self._popen is not None:
            raise ProcessError(f"{self.name} was already started")
        self._files = [self.stdout_path.open("ab"), self.stderr_path.open("ab")]
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._files[0],
                stderr=self._files[1],
                env=self.env,
                start_new_session=True,
            )
        except BaseException:
            self._close_files()
            raise

    def wait_ready(
        self, predicate: Callable[[], bool], *, timeout: float = READY_TIMEOUT, what: str = "ready"
    ) -> None:
        def check() -> bool:
            if not self.running:
                raise ProcessError(f"{self.name} exited before {what}\n{self.logs()}")
            return predicate()

        try:
            wait_for(check, timeout=timeout, what=f"{self.name} {what}")
        except TimeoutError as exc:
            raise ProcessError(f"{exc}\n{self.logs()}") from None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """`stop_signal`, then SIGKILL for what is left of the process group; reap the leader."""
        popen = self._popen
        if popen is None:
            return
        try:
            if popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(popen.pid, self.stop_signal)
                _wait_exited_unreaped(popen.pid, timeout)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout)
        finally:
            self._close_files()

    def logs(self) -> str:
        return (
            f"--- {self.name} stderr ---\n{tail(self.stderr_path)}\n"
            f"--- {self.name} stdout ---\n{tail(self.stdout_path)}"
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _close_files(self) -> None:
        for file in self._files:
            file.close()
        self._files = []


def _wait_exited_unreaped(pid: int, timeout: float) -> bool:
    """Wait for the child to exit without reaping it, so its group id cannot be reused yet."""
    deadline = time.monotonic() + timeout
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)
    return True


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float = 300.0,
    env: Mapping[str, str] | None = None,
    netns: str | None = None,
) -> str:
    """Run a command to completion and return its stdout; ProcessError with its output."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    args = prefix + [os.fspath(arg) for arg in argv]
    try:
        result = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ProcessError(f"timed out after {timeout:.0f} s: {' '.join(args)}") from exc
    if result.returncode != 0:
        raise ProcessError(
            f"exit {result.returncode}: {' '.join(args)}\n"
            f"{result.stdout.decode(errors='replace')[-2000:]}"
            f"{result.stderr.decode(errors='replace')[-2000:]}"
        )
    return result.stdout.decode(errors="replace")
