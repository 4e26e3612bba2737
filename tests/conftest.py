from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.images import PushedImage, seed_registry
from tests.support.regcache import Regcache, start_regcache
from tests.support.registry import Registry
from tests.support.relay import Relay, running_relay


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One real distribution registry for the session, holding the standard images."""
    with Registry(tmp_path_factory.mktemp("upstream")) as registry:
        yield registry


@pytest.fixture(scope="session")
def images(upstream: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, PushedImage]:
    return seed_registry(upstream, tmp_path_factory.mktemp("images"))


@pytest.fixture
def relay(upstream: Registry) -> Iterator[Relay]:
    """A fault-injecting relay in front of the session's registry."""
    with running_relay(upstream.url) as running:
        yield running


StartRegcache = Callable[..., Regcache]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[StartRegcache]:
    """Start regcache processes (stopped at the end of the test); defaults: a fresh cache dir."""
    started: list[Regcache] = []

    def start_one(
        upstream_url: str | None,
        *,
        cache_dir: Path | None = None,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> Regcache:
        server = start_regcache(
            upstream_url,
            cache_dir or tmp_path / "cache",
            args=args,
            env=env,
            log_name=f"regcache-{len(started)}.log",
        )
        started.append(server)
        return server

    yield start_one
    for server in started:
        server.stop()


@pytest.fixture
def regcache(start: StartRegcache, upstream: Registry) -> Regcache:
    return start(upstream.url)
