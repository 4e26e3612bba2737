"""Run a daemon as a subprocess with its output in log files, wait for it, and always stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

POLL_INTERVAL = 0.05
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class ProcessError(RuntimeError):
    """A managed process failed to start, died, or did not become ready in time."""


def wait_for(
    predicate: Callable[[], bool],
    *,
    timeout: float = READY_TIMEOUT,
    interval: float = POLL_INTERVAL,
    what: str = "condition",
    on_timeout: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``predicate`` every ``interval`` seconds until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{on_timeout()}")
        time.sleep(interval)


def tail(path: Path, limit: int = 8000) -> str:
    """The last ``limit`` characters of a text file, or "" if it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return text[-limit:]


class Service:
    """Something that is started and stopped; `with` it to be sure it is stopped."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

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


PORT_ATTEMPTS = 3


def start_on_free_ports(
    start_once: Callable[[], None],
    stop: Callable[[], object],
    new_ports: Callable[[], None],
    *,
    restart: bool,
) -> None:
    """Start; when the process lost the race for a free port (taken meanwhile), try new ones.

    A restart keeps its ports: clients know them.
    """
    for attempt in range(PORT_ATTEMPTS):
        try:
            start_once()
            return
        except ProcessError as exc:
            stop()
            lost_race = "address already in use" in str(exc).lower()
            if restart or not lost_race or attempt == PORT_ATTEMPTS - 1:
                raise
            new_ports()
        except BaseException:
            stop()
            raise


class Process(Service):
    """A subprocess whose stdout and stderr go to ``<log_dir>/<name>.stdout.log`` / ``.stderr.log``.

    It runs in its own session, so stopping it can also kill whatever it left in its process group.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [os.fspath(arg) for arg in argv]
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self._popen: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []
        self._stderr_offset = 0

    @property
    def pid(self) -> int:
        return self._require_popen().pid

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> None:
        """Start (or restart, after ``stop``); output is appended to the same log files."""
        if self._popen is not None and self._popen.returncode is None:
            raise ProcessError(f"{self.name} is already running")
        self._files = [self.stdout_path.open("ab"), self.stderr_path.open("ab")]
        self._stderr_offset = self._files[1].tell()
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._files[0],
                stderr=self._files[1],
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except BaseException:
            self._close_files()
            raise

    def wait_until(
        self, predicate: Callable[[], bool], *, timeout: float = READY_TIMEOUT, what: str = "ready"
    ) -> None:
        """Poll ``predicate`` until true; raise with the logs if the process exits or times out."""

        def check() -> bool:
            if not self.running:
                raise ProcessError(
                    f"{self.name} exited with {self.returncode} before {what}\n{self.logs()}"
                )
            return predicate()

        try:
            wait_for(check, timeout=timeout, what=f"{self.name} {what}")
        except TimeoutError as exc:
            raise ProcessError(f"{exc}\n{self.logs()}") from None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL what is left of the process group.

        The leader is only reaped after the group is killed, so its id cannot have been reused.
        """
        popen = self._popen
        if popen is None:
            return None
        try:
            if popen.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(popen.pid, signal.SIGTERM)
                _wait_exited_unreaped(popen.pid, timeout)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
        finally:
            self._close_files()
        return popen.returncode

    def stderr_since_start(self) -> str:
        """What the current (or last) run wrote to stderr."""
        with self.stderr_path.open("rb") as file:
            file.seek(self._stderr_offset)
            return file.read().decode(errors="replace")

    def logs(self) -> str:
        return (
            f"--- {self.name} stderr ({self.stderr_path}) ---\n{tail(self.stderr_path)}\n"
            f"--- {self.name} stdout ({self.stdout_path}) ---\n{tail(self.stdout_path)}"
        )

    def _require_popen(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise ProcessError(f"{self.name} is not started")
        return self._popen

    def _close_files(self) -> None:
        for file in self._files:
            file.close()
        self._files = []


def _wait_exited_unreaped(pid: int, timeout: float) -> bool:
    """Wait for a child to exit without reaping it; False if it is still running at the deadline."""
    deadline = time.monotonic() + timeout
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True


def run_bytes(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float = 300.0,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """Run a command to completion and return its stdout; raise with its output on failure."""
    args = [os.fspath(arg) for arg in argv]
    result = subprocess.run(
        args,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        env=dict(env) if env is not None else None,
        check=False,
    )
    if result.returncode != 0:
        raise ProcessError(
            f"command failed with {result.returncode}: {' '.join(args)}\n"
            f"--- stdout ---\n{result.stdout.decode(errors='replace')}\n"
            f"--- stderr ---\n{result.stderr.decode(errors='replace')}"
        )
    return result.stdout


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float = 300.0,
    env: Mapping[str, str] | None = None,
) -> str:
    """Like ``run_bytes``, decoding stdout as UTF-8."""
    return run_bytes(argv, timeout=timeout, env=env).decode(errors="replace")
