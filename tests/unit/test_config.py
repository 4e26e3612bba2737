from __future__ import annotations

from pathlib import Path

import pytest

from regcache.config import (
    DEFAULT_CACHE_SIZE,
    DOCKER_HUB_URL,
    ConfigError,
    Secret,
    load_settings,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("500GB", 500 * 1000**3),
        ("1TiB", 1024**4),
        ("10 mb", 10 * 1000**2),
        ("2048", 2048 * 1000**2),
        ("1.5G", 1_500_000_000),
        ("100B", 100),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GB", "-1GB", "10XB", "0"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_defaults_are_a_docker_hub_mirror(tmp_path: Path) -> None:
    settings = load_settings(environ={"XDG_CACHE_HOME": str(tmp_path)}, check_paths=False)
    assert settings.upstream.url == DOCKER_HUB_URL
    assert (settings.listen_host, settings.listen_port) == ("0.0.0.0", 5000)
    assert settings.cache_size == DEFAULT_CACHE_SIZE
    assert not settings.tls


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "regcache.toml"
    config.write_text(
        'listen = "127.0.0.1:6000"\ncache_size = "1GB"\ncache_dir = "%s"\n'
        '[upstream]\nurl = "http://file.example:5000"\n' % (tmp_path / "c")
    )
    settings = load_settings(
        config_file=config,
        environ={"REGCACHE_CACHE_SIZE": "2GB", "REGCACHE_UPSTREAM": "https://env.example"},
        flags={"cache_size": "3GB", "listen": None},
    )
    assert settings.listen_port == 6000
    assert settings.upstream.url == "https://env.example"
    assert settings.cache_size == 3 * 1000**3


def test_every_mistake_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('listen = "nowhere"\nbogus = 1\n[upstream]\nurl = "ftp://x"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=config, environ={"REGCACHE_NOPE": "1"}, check_paths=False)
    message = str(caught.value)
    for fragment in ("listen", "unknown setting 'bogus'", "upstream.url", "REGCACHE_NOPE"):
        assert fragment in message


def test_missing_certificate_and_unwritable_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as caught:
        load_settings(
            environ={},
            flags={"tls.dir": str(tmp_path / "nope"), "cache_dir": str(blocker / "sub")},
        )
    assert "TLS certificate" in str(caught.value)
    assert "cache directory" in str(caught.value)


def test_secrets_never_show(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"REGCACHE_UPSTREAM_PASSWORD": "hunter2"}, check_paths=False)
    assert "hunter2" not in str(caught.value)
    settings = load_settings(
        environ={"REGCACHE_UPSTREAM_USERNAME": "u", "REGCACHE_UPSTREAM_PASSWORD": "hunter2"},
        check_paths=False,
    )
    assert "hunter2" not in repr(settings)
    assert settings.upstream.password == Secret("hunter2")
