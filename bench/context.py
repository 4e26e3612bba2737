"""What every scenario is given: the profile, the upstream, the images, and how to start systems."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import systems
from bench.images import Image
from bench.memory import MemoryMonitor
from bench.profiles import Profile
from bench.systems import Running, Setup
from bench.upstream import Upstream

BIG = "bench/big"
PULL = "bench/pull"
MANY = "bench/many"
SLOW = "bench/slow"


@dataclass
class Bench:
    profile: Profile
    workdir: Path
    upstream: Upstream
    images: dict[str, Image]
    static_root: Path
    memory: MemoryMonitor
    started_at: float
    regcache_src: Path | None = None

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started_at
        print(f"[bench {elapsed:6.0f}s] {message}", file=sys.stderr, flush=True)

    def runs(self, scenario: str) -> int:
        return self.profile.runs.get(scenario, 1)

    def systems(self, *candidates: str) -> list[str]:
        """The candidates this run includes, in the order given."""
        return [name for name in candidates if name in self.profile.systems]

    def setup(self, upstream: str | None = None) -> Setup:
        return Setup(
            self.workdir, upstream or self.upstream.address, self.static_root, self.regcache_src
        )

    @contextmanager
    def serving(
        self,
        name: str,
        *,
        monitor: bool = False,
        upstream: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Iterator[Running]:
        """A fresh instance of `name`; with `monitor`, its peak memory goes into S6."""
        with systems.started(name, self.setup(upstream), env=env) as running:
            watched = monitor and running.pid is not None and name != systems.DIRECT
            if watched and running.pid is not None:
                self.memory.watch(name, running.pid)
            try:
                yield running
            finally:
                if watched and running.pid is not None:
                    self.memory.unwatch(running.pid)
