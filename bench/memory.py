"""Peak memory of the servers under test: VmHWM of each, and sampled RSS of its process group."""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from pathlib import Path

INTERVAL = 0.1


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _session_members(sid: int) -> list[int]:
    """Every process of session `sid` (a service and whatever it forked, e.g. squid's helpers)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid:  # fields after the name: state, ppid, pgrp, session
            members.append(int(entry.name))
    return members


class MemoryMonitor:
    """Samples watched processes on a thread; `peaks` holds one value (MiB) per watched instance."""

    def __init__(self) -> None:
        self._watched: dict[int, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peaks: dict[str, list[float]] = defaultdict(list)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="memory-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def watch(self, system: str, pid: int) -> None:
        with self._lock:
            self._watched[pid] = (system, self._sample(pid))

    def unwatch(self, pid: int) -> None:
        """Record the instance's peak; call it before the process is stopped."""
        with self._lock:
            entry = self._watched.pop(pid, None)
        if entry is not None:
            system, sampled = entry
            hwm = _status_kib(pid, "VmHWM") / 1024
            self.peaks[system].append(round(max(sampled, hwm, self._sample(pid)), 1))

    def _sample(self, pid: int) -> float:
        members = _session_members(pid) if os.path.exists(f"/proc/{pid}") else []
        return sum(_status_kib(member, "VmRSS") for member in members) / 1024

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            with self._lock:
                pids = list(self._watched)
            for pid in pids:
                value = self._sample(pid)
                with self._lock:
                    if pid in self._watched:
                        system, peak = self._watched[pid]
                        self._watched[pid] = (system, max(peak, value))
