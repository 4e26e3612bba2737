from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from regcache.cache import PullThroughCache
from regcache.config import ConfigError, UpstreamSettings, load_settings
from regcache.errors import NameUnknown
from regcache.registries import canonical_host, hub_repository, looks_like_host
from regcache.routing import Router


def test_docker_hub_rules() -> None:
    assert hub_repository("alpine") == "library/alpine"
    assert hub_repository("bitnami/redis") == "bitnami/redis"
    assert (
        canonical_host("registry-1.docker.io") == canonical_host("index.docker.io") == "docker.io"
    )
    assert looks_like_host("ghcr.io") and looks_like_host("localhost")
    assert not looks_like_host("library")


def test_known_registries_by_name(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[[upstreams]]\nname = "ghcr.io"\n[[upstreams]]\nname = "hub"\nurl = "docker.io"\n'
    )
    settings = load_settings(config_file=config, environ={}, check_paths=False)
    by_name = {u.name: u for u in settings.upstreams}
    assert by_name["ghcr.io"].url == "https://ghcr.io"
    assert by_name["hub"].url == "https://registry-1.docker.io"
    assert by_name["hub"].is_docker_hub
    assert settings.default_upstream == "hub", "Docker Hub is the default when none is named"


def test_upstream_mistakes_are_named(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[[upstreams]]\nname = "a"\nurl = "ftp://x"\nbogus = 1\n')
    with pytest.raises(ConfigError, match="upstream #1"):
        load_settings(config_file=config, environ={}, check_paths=False)
    config.write_text('[[upstreams]]\nname = "a"\n[[upstreams]]\nname = "a"\n')
    with pytest.raises(ConfigError, match="unique"):
        load_settings(config_file=config, environ={}, check_paths=False)
    config.write_text('default_upstream = "zzz"\n[[upstreams]]\nname = "a"\nurl = "quay.io"\n')
    with pytest.raises(ConfigError, match="zzz"):
        load_settings(config_file=config, environ={}, check_paths=False)


def fake_cache(settings: UpstreamSettings) -> PullThroughCache:
    upstream = SimpleNamespace(settings=settings, name=settings.name)
    return cast(PullThroughCache, SimpleNamespace(upstream=upstream))


@pytest.fixture
def router() -> Router:
    hub = fake_cache(UpstreamSettings())
    ghcr = fake_cache(UpstreamSettings(name="ghcr", url="https://ghcr.io", hosts=("ghcr.cache",)))
    return Router([hub, ghcr], default="docker.io")


@pytest.mark.parametrize(
    ("name", "host", "ns", "upstream", "repository"),
    [
        ("alpine", None, None, "docker.io", "library/alpine"),
        ("docker.io/alpine", None, None, "docker.io", "library/alpine"),
        ("ghcr/org/app", None, None, "ghcr", "org/app"),
        ("ghcr.io/org/app", None, None, "ghcr", "org/app"),
        ("org/app", None, "ghcr.io", "ghcr", "org/app"),
        ("alpine", None, "docker.io", "docker.io", "library/alpine"),
        ("org/app", "ghcr.cache:5000", None, "ghcr", "org/app"),
    ],
)
def test_routes(
    router: Router, name: str, host: str | None, ns: str | None, upstream: str, repository: str
) -> None:
    target = router.resolve(name, host=host, ns=ns)
    assert (target.cache.upstream.name, target.repository) == (upstream, repository)


@pytest.mark.parametrize(("name", "ns"), [("quay.io/a/b", None), ("a/b", "quay.io")])
def test_unknown_registries_are_errors(router: Router, name: str, ns: str | None) -> None:
    with pytest.raises(NameUnknown):
        router.resolve(name, host=None, ns=ns)
