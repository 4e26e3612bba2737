"""Prometheus metrics, in a registry of their own per server (nothing global at import)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            "regcache_requests", "Client requests by route, method and status.",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.responses = Counter(
            "regcache_responses", "Answers with content, by route and cache result.",
            ["kind", "cache"], registry=r,
        )  # fmt: skip
        self.client_bytes = Counter(
            "regcache_client_bytes", "Bytes sent to clients, by source (cache or upstream).",
            ["source"], registry=r,
        )  # fmt: skip
        self.upstream_bytes = Counter(
            "regcache_upstream_bytes", "Bytes received from each upstream.", ["upstream"],
            registry=r,
        )  # fmt: skip
        self.upstream_requests = Counter(
            "regcache_upstream_requests", "Requests sent to each upstream, by outcome.",
            ["upstream", "outcome"], registry=r,
        )  # fmt: skip
        self.upstream_latency = Histogram(
            "regcache_upstream_request_seconds", "Time to the upstream's response headers.",
            ["upstream"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.token_fetches = Counter(
            "regcache_token_fetches", "Bearer tokens fetched from token services.", ["upstream"],
            registry=r,
        )  # fmt: skip
        self.stale_served = Counter(
            "regcache_stale_served", "Cached tags served because the upstream failed.",
            ["upstream"], registry=r,
        )  # fmt: skip
        self.rate_limited = Counter(
            "regcache_upstream_rate_limited", "429 answers seen from each upstream.", ["upstream"],
            registry=r,
        )  # fmt: skip
        self.evictions = Counter("regcache_evictions", "Blobs evicted for the budget.", registry=r)
        self.evicted_bytes = Counter(
            "regcache_evicted_bytes", "Bytes evicted for the budget.", registry=r
        )
        self.download_failures = Counter(
            "regcache_download_failures", "Upstream downloads that kept nothing.", registry=r
        )
        self.download_resumes = Counter(
            "regcache_download_resumes", "Broken upstream transfers resumed with Range.", registry=r
        )
        self.store_failures = Counter(
            "regcache_store_failures", "Verified blobs served but not kept (disk full).", registry=r
        )
        self.in_flight = Gauge(
            "regcache_downloads_in_flight", "Upstream blob downloads under way.", registry=r
        )
        self.coalesced_waiters = Gauge(
            "regcache_coalesced_waiters", "Clients reading a download under way.", registry=r
        )
        self.cache_size = Gauge("regcache_cache_size_bytes", "Bytes stored.", registry=r)
        self.cache_budget = Gauge("regcache_cache_budget_bytes", "The size budget.", registry=r)

    def watch(
        self,
        *,
        size: Callable[[], float],
        budget: Callable[[], float],
        in_flight: Callable[[], float],
        waiters: Callable[[], float],
    ) -> None:
        """Gauges read at scrape time from the live state."""
        self.cache_size.set_function(size)
        self.cache_budget.set_function(budget)
        self.in_flight.set_function(in_flight)
        self.coalesced_waiters.set_function(waiters)

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once: the per-request path asks for the same few."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.registry.get_sample_value(name, labels or {}) or 0.0
