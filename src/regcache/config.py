"""Settings: embedded defaults, then a TOML file, then REGCACHE_* variables, then flags.

Every source is validated the same way, and every mistake is reported with where it came from.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from regcache.freshness import FreshnessPolicy, TagRule, parse_rules
from regcache.registries import DOCKER_HUB, KNOWN_REGISTRIES, registry_host

DOCKER_HUB_URL = "https://registry-1.docker.io"
DEFAULT_CACHE_SIZE = 10 * 1000**3
ENV_PREFIX = "REGCACHE_"


class ConfigError(Exception):
    """One or more settings are wrong; the message lists each of them."""


class Secret:
    """A credential that never shows itself in a repr, a log line or an error."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class UpstreamSettings:
    name: str = DOCKER_HUB
    url: str = DOCKER_HUB_URL
    hosts: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    username: str | None = None
    password: Secret | None = None
    passthrough_auth: bool = True
    timeout: float = 30.0
    tls_verify: bool = True
    ca_bundle: Path | None = None
    docker_config: Path | None = None
    tag_ttl: float | None = None
    tag_rules: tuple[TagRule, ...] | None = None

    @property
    def registry(self) -> str:
        """The registry's name in image references (`docker.io`, `ghcr.io`, `host:port`)."""
        return registry_host(self.url)

    @property
    def is_docker_hub(self) -> bool:
        return self.registry == DOCKER_HUB

    @property
    def names(self) -> tuple[str, ...]:
        """What selects this upstream in a path prefix or a containerd `ns`."""
        return tuple(dict.fromkeys((self.name, self.registry, *self.aliases)))


@dataclass(frozen=True)
class Settings:
    listen_host: str = "0.0.0.0"
    listen_port: int = 5000
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())
    cache_size: int = DEFAULT_CACHE_SIZE
    tls_cert: Path | None = None
    tls_key: Path | None = None
    upstreams: tuple[UpstreamSettings, ...] = (UpstreamSettings(),)
    default_upstream: str | None = DOCKER_HUB
    public_url: str | None = None
    tag_ttl: float = 0.0
    tag_rules: tuple[TagRule, ...] = ()
    htpasswd: Path | None = None
    confirm_ttl: float = 60.0
    admin_host: str | None = "127.0.0.1"
    admin_port: int = 5001
    admin_token: Secret | None = None
    admin_public: bool = False
    storage_backend: str = "filesystem"
    s3: dict[str, Any] = field(default_factory=dict)
    redirect: bool = False
    local_cache_size: int = 0
    index_backend: str = "sqlite"
    redis_url: str | None = None
    redis_prefix: str = "regcache:"
    lock_ttl: float = 30.0
    log_level: str = "info"
    log_format: str = "text"

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def upstream(self) -> UpstreamSettings:
        """The default upstream, or else the first one."""
        for upstream in self.upstreams:
            if upstream.name == self.default_upstream:
                return upstream
        return self.upstreams[0]

    def freshness(self, upstream: UpstreamSettings) -> FreshnessPolicy:
        ttl = self.tag_ttl if upstream.tag_ttl is None else upstream.tag_ttl
        rules = self.tag_rules if upstream.tag_rules is None else upstream.tag_rules
        return FreshnessPolicy(ttl, rules)


def default_cache_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/cache/regcache")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "regcache"


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


def parse_size(text: str | int) -> int:
    """'500GB' -> bytes. Decimal units (KB, MB, GB, TB) and binary ones (KiB ... TiB); bare = MB.

    A bare number is megabytes, as the seed's `cache_size` was.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        return text * 1000**2
    match = _SIZE.fullmatch(str(text))
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 500MB, 10GB, 1TiB)")
    number, unit = float(match[1]), (match[2] or "").lower()
    if not unit:
        base = 1000**2
    elif "i" in unit:
        base = 1024 ** {"k": 1, "m": 2, "g": 3, "t": 4}[unit[0]]
    else:
        base = _UNITS[unit[0]]
    size = int(number * base)
    if size <= 0:
        raise ValueError("size must be positive")
    return size


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not HOST:PORT: {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def parse_optional_listen(text: str) -> tuple[str | None, int]:
    """HOST:PORT, or "off" for no listener."""
    if str(text).strip().lower() in ("", "off", "none"):
        return None, 0
    return parse_listen(text)


def parse_url(text: str) -> str:
    """An http(s) URL, or the name of a well-known registry (`ghcr.io`)."""
    known = KNOWN_REGISTRIES.get(str(text).strip().lower())
    if known is not None:
        return known
    parts = urlsplit(str(text).strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {text!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"the URL must not have a query or fragment: {text!r}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def parse_bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def parse_seconds(value: str | float) -> float:
    seconds = float(value)
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if str(value).lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return str(value).lower()

    return parse


def _path(value: str) -> Path:
    return Path(str(value)).expanduser()


def parse_names(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of names")
    return tuple(item.strip().lower() for item in value)


def parse_name(value: str) -> str:
    name = str(value).strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]*", name):
        raise ValueError(f"not a valid upstream name: {value!r}")
    return name


# An upstream's own keys, in `[upstream]` and in each `[[upstreams]]` table.
UPSTREAM_PARSERS: dict[str, Callable[[Any], Any]] = {
    "name": parse_name,
    "url": parse_url,
    "hosts": parse_names,
    "aliases": parse_names,
    "username": str,
    "password": lambda v: Secret(str(v)),
    "passthrough_auth": parse_bool,
    "timeout": parse_seconds,
    "tls_verify": parse_bool,
    "ca_bundle": _path,
    "docker_config": _path,
    "tags.ttl": parse_seconds,
    "tags.rules": parse_rules,
}
UPSTREAM_FIELDS = {"tags.ttl": "tag_ttl", "tags.rules": "tag_rules"}


def build_upstream(values: Mapping[str, Any], origin: str) -> UpstreamSettings:
    """One upstream from its parsed keys; ConfigError names what is wrong."""
    fields = {UPSTREAM_FIELDS.get(key, key): value for key, value in values.items()}
    if (fields.get("username") is None) != (fields.get("password") is None):
        raise ConfigError(f"{origin}: username and password must be given together")
    if "name" not in fields:
        fields["name"] = registry_host(fields.get("url", DOCKER_HUB_URL))
    if "url" not in fields and fields["name"] in KNOWN_REGISTRIES:
        fields["url"] = KNOWN_REGISTRIES[fields["name"]]
    return UpstreamSettings(**fields)


def parse_upstreams(value: object) -> tuple[dict[str, Any], ...]:
    """`[[upstreams]]` tables (or JSON in REGCACHE_UPSTREAMS), each key checked."""
    if isinstance(value, str):
        import json

        value = json.loads(value)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError("upstreams must be a list of tables")
    tables = []
    for number, table in enumerate(value, start=1):
        parsed: dict[str, Any] = {}
        for key, raw in _flatten(table).items():
            parser = UPSTREAM_PARSERS.get(key)
            if parser is None:
                raise ValueError(f"upstream #{number}: unknown key {key!r}")
            try:
                parsed[key] = parser(raw)
            except (ValueError, TypeError) as exc:
                shown = "***" if key == "password" else repr(raw)
                raise ValueError(f"upstream #{number}: {key} = {shown}: {exc}") from None
        tables.append(parsed)
    return tuple(tables)


# Setting key (as written in TOML, dotted for tables) -> parser.
# Its variable is REGCACHE_ + the key upper-cased with dots as underscores.
PARSERS: dict[str, Callable[[Any], Any]] = {
    "listen": parse_listen,
    "cache_dir": _path,
    "cache_size": parse_size,
    "tls.dir": _path,
    "tls.cert": _path,
    "tls.key": _path,
    **{f"upstream.{key}": parser for key, parser in UPSTREAM_PARSERS.items()},
    "upstreams": parse_upstreams,
    "default_upstream": str,
    "public_url": parse_url,
    "auth.htpasswd": _path,
    "auth.confirm_ttl": parse_seconds,
    "admin.listen": parse_optional_listen,
    "admin.token": lambda v: Secret(str(v)),
    "admin.public": parse_bool,
    "storage.backend": parse_choice("filesystem", "s3"),
    "storage.redirect": parse_bool,
    "storage.local_cache_size": parse_size,
    "storage.s3.bucket": str,
    "storage.s3.prefix": str,
    "storage.s3.endpoint": parse_url,
    "storage.s3.region": str,
    "storage.s3.access_key": str,
    "storage.s3.secret_key": lambda v: Secret(str(v)),
    "storage.s3.presign_ttl": parse_seconds,
    "index.backend": parse_choice("sqlite", "redis"),
    "index.redis_url": str,
    "index.redis_prefix": str,
    "cluster.lock_ttl": parse_seconds,
    "tags.ttl": parse_seconds,
    "tags.rules": parse_rules,
    "log.level": parse_choice("debug", "info", "warning", "error"),
    "log.format": parse_choice("text", "json"),
}
ENV_ALIASES = {"REGCACHE_UPSTREAM": "upstream.url"}
SECRET_KEYS = {"upstream.password", "upstreams", "admin.token", "storage.s3.secret_key"}


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace(".", "_")


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(_flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return _flatten(tomllib.load(fh))
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


def read_env(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    by_env = {env_name(key): key for key in PARSERS} | ENV_ALIASES
    values: dict[str, str] = {}
    errors: list[str] = []
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "REGCACHE_CONFIG":
            continue
        key = by_env.get(name)
        if key is None:
            errors.append(f"environment: unknown variable {name}")
        else:
            values[key] = value
    return values, errors


def load_settings(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    check_paths: bool = True,
) -> Settings:
    """Merge every source into one validated Settings, or raise ConfigError listing each mistake."""
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get("REGCACHE_CONFIG"):
        config_file = Path(environ["REGCACHE_CONFIG"])
    sources: list[tuple[str, dict[str, Any]]] = []
    errors: list[str] = []
    if config_file is not None:
        sources.append((f"config file {config_file}", read_toml(config_file)))
    env_values, env_errors = read_env(environ)
    errors += env_errors
    sources.append(("environment", env_values))
    sources.append(("command line", {k: v for k, v in (flags or {}).items() if v is not None}))

    values: dict[str, Any] = {}
    for origin, raw in sources:
        for key, value in raw.items():
            parser = PARSERS.get(key)
            if parser is None:
                errors.append(f"{origin}: unknown setting {key!r}")
                continue
            try:
                values[key] = parser(value)
            except (ValueError, TypeError) as exc:
                shown = "***" if key in SECRET_KEYS else repr(value)
                errors.append(f"{origin}: {key} = {shown}: {exc}")
    if errors:
        raise ConfigError("\n".join(errors))
    settings = _build(values)
    if check_paths:
        _check_paths(settings)
    return settings


def _build(values: dict[str, Any]) -> Settings:
    errors: list[str] = []
    upstreams, default = _build_upstreams(values)
    tls_cert, tls_key = values.get("tls.cert"), values.get("tls.key")
    if "tls.dir" in values:
        if tls_cert or tls_key:
            errors.append("give either tls.dir or tls.cert with tls.key, not both")
        tls_cert, tls_key = values["tls.dir"] / "cert.pem", values["tls.dir"] / "key.pem"
    elif (tls_cert is None) != (tls_key is None):
        errors.append("tls.cert and tls.key must be given together")
    if values.get("storage.backend") == "s3" and "storage.s3.bucket" not in values:
        errors.append("storage.backend = s3 needs storage.s3.bucket")
    if values.get("index.backend") == "redis" and "index.redis_url" not in values:
        errors.append("index.backend = redis needs index.redis_url")
    if errors:
        raise ConfigError("\n".join(errors))
    host, port = values.get("listen", ("0.0.0.0", 5000))
    admin_host, admin_port = values.get("admin.listen", ("127.0.0.1", 5001))
    extra: dict[str, Any] = {}
    if "cache_dir" in values:
        extra["cache_dir"] = values["cache_dir"]
    return Settings(
        listen_host=host,
        listen_port=port,
        cache_size=values.get("cache_size", DEFAULT_CACHE_SIZE),
        tls_cert=tls_cert,
        tls_key=tls_key,
        upstreams=upstreams,
        default_upstream=default,
        public_url=values.get("public_url"),
        tag_ttl=values.get("tags.ttl", 0.0),
        tag_rules=values.get("tags.rules", ()),
        htpasswd=values.get("auth.htpasswd"),
        confirm_ttl=values.get("auth.confirm_ttl", 60.0),
        admin_host=admin_host,
        admin_port=admin_port,
        admin_token=values.get("admin.token"),
        admin_public=values.get("admin.public", False),
        storage_backend=values.get("storage.backend", "filesystem"),
        s3={k.rsplit(".", 1)[1]: v for k, v in values.items() if k.startswith("storage.s3.")},
        redirect=values.get("storage.redirect", False),
        local_cache_size=values.get("storage.local_cache_size", 0),
        index_backend=values.get("index.backend", "sqlite"),
        redis_url=values.get("index.redis_url"),
        redis_prefix=values.get("index.redis_prefix", "regcache:"),
        lock_ttl=values.get("cluster.lock_ttl", 30.0),
        log_level=values.get("log.level", "info"),
        log_format=values.get("log.format", "text"),
        **extra,
    )


def _build_upstreams(
    values: dict[str, Any],
) -> tuple[tuple[UpstreamSettings, ...], str | None]:
    """The `[upstream]` table (the flags' upstream) and the `[[upstreams]]` list, and the default.

    The default answers plain `/v2/<repo>`: `default_upstream` if set ("" for none), else the
    `[upstream]` one, else the Docker Hub upstream if there is one.
    """
    legacy = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("upstream.")}
    listed = [
        build_upstream(table, f"upstreams #{n}")
        for n, table in enumerate(values.get("upstreams", ()), start=1)
    ]
    upstreams = list(listed)
    if legacy or not listed:
        upstreams.insert(0, build_upstream(legacy, "upstream"))
    names = [upstream.name for upstream in upstreams]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"upstream names must be unique: {', '.join(duplicates)}")
    if "default_upstream" in values:
        default = values["default_upstream"] or None
        if default is not None and default not in names:
            raise ConfigError(f"default_upstream {default!r} is not a configured upstream")
    elif legacy or not listed:
        default = upstreams[0].name
    else:
        default = next((u.name for u in upstreams if u.is_docker_hub), None)
    return tuple(upstreams), default


def _check_paths(settings: Settings) -> None:
    errors: list[str] = []
    for label, path in (
        ("TLS certificate", settings.tls_cert),
        ("TLS key", settings.tls_key),
        ("htpasswd file", settings.htpasswd),
        *((f"upstream {u.name} CA bundle", u.ca_bundle) for u in settings.upstreams),
        *((f"upstream {u.name} docker config", u.docker_config) for u in settings.upstreams),
    ):
        if path is not None and not os.access(path, os.R_OK):
            errors.append(f"{label} {path}: missing or unreadable")
    try:
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(settings.cache_dir, os.W_OK | os.X_OK):
            errors.append(f"cache directory {settings.cache_dir}: not writable")
    except OSError as exc:
        errors.append(f"cache directory {settings.cache_dir}: {exc.strerror}")
    if errors:
        raise ConfigError("\n".join(errors))
