"""Which upstream a request is for: by Host, by containerd's `ns`, by path prefix, or the default.

The order is fixed: a Host header naming an upstream wins; then `?ns=<registry>` (containerd
mirrors), which must name a registry this cache serves; then a first path component naming an
upstream (`/v2/ghcr.io/org/app/...`, podman and cri-o mirrors with a path); then the default
upstream (dockerd's `registry-mirrors`). A first component that looks like a registry host but
names no upstream is an error, never a pull from the default registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from regcache.cache import PullThroughCache
from regcache.errors import NameUnknown
from regcache.reference import validate_name
from regcache.registries import canonical_host, hub_repository, looks_like_host


@dataclass(frozen=True)
class Target:
    cache: PullThroughCache
    repository: str
    namespace: str | None = None


class Router:
    def __init__(self, caches: Sequence[PullThroughCache], default: str | None) -> None:
        self.caches = tuple(caches)
        self._by_name: dict[str, PullThroughCache] = {}
        self._by_registry: dict[str, PullThroughCache] = {}
        self._by_host: dict[str, PullThroughCache] = {}
        self.default: PullThroughCache | None = None
        for cache in caches:
            settings = cache.upstream.settings
            for name in settings.names:
                self._by_name.setdefault(name.lower(), cache)
                self._by_registry.setdefault(canonical_host(name), cache)
            for host in settings.hosts:
                self._by_host[host.lower()] = cache
            if settings.name == default:
                self.default = cache

    def for_host(self, host: str | None) -> PullThroughCache | None:
        if not host or not self._by_host:
            return None
        host = host.lower()
        return self._by_host.get(host) or self._by_host.get(host.rsplit(":", 1)[0])

    def base(self, host: str | None) -> PullThroughCache | None:
        """The upstream a bare `/v2/` check is about."""
        return self.for_host(host) or self.default

    def resolve(self, name: str, *, host: str | None, ns: str | None) -> Target:
        by_host = self.for_host(host)
        if by_host is not None:
            return _target(by_host, name)
        if ns:
            cache = self._by_registry.get(canonical_host(ns))
            if cache is None:
                raise NameUnknown(
                    f"this cache does not mirror registry {ns!r}", detail={"ns": ns[:255]}
                )
            return _target(cache, name, cache.upstream.settings.registry)
        first, _, rest = name.partition("/")
        prefixed = self._by_name.get(first)
        if prefixed is not None and rest:
            return _target(prefixed, rest)
        if rest and looks_like_host(first):
            raise NameUnknown(
                f"no upstream is configured for registry {first!r}", detail={"name": name}
            )
        if self.default is None:
            raise NameUnknown(
                "no default upstream: name one in the path, /v2/<upstream>/<repository>/...",
                detail={"upstreams": sorted(c.upstream.name for c in self.caches)},
            )
        return _target(self.default, name)


def _target(cache: PullThroughCache, repository: str, namespace: str | None = None) -> Target:
    if cache.upstream.settings.is_docker_hub:
        repository = hub_repository(repository)
    return Target(cache, validate_name(repository), namespace)
