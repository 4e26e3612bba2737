"""The operator dashboard in headless Chromium: every figure shown matches /api/stats exactly.

The server under test is the one fixture `served` (a base URL, and the stats it answers when
they are fixed). Until the admin API exists it is a stand-in aiohttp server that serves the
dashboard's files with `regcache.web.add_routes` and answers `GET /api/stats` with fixed JSON.
To test a real regcache instead, make `served` start one (with a pull running) and return its
admin URL with `stats=None`: every check below compares the page with the JSON that the page
itself fetched (the page's timers are frozen, so nothing is fetched behind the test's back).

The tests are plain functions (no asyncio): Playwright's sync API runs its own loop, and the
stand-in server runs in a thread of its own.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import random
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import Browser, Page, Response, expect

from regcache import web as dashboard
from tests.conftest import StartRegcache
from tests.support.browser import DESKTOP, LAPTOP, browser_context, chromium
from tests.support.http import request
from tests.support.images import PushedImage
from tests.support.regcache import Regcache
from tests.support.registry import Registry
from tests.support.relay import Fault, Relay, running_relay

BUILD = Path(__file__).resolve().parents[2] / "build"
POLL_MS = 2000
PLACEHOLDER = "\N{EN DASH}"  # what the page shows before its first figures
TIMEOUT_MS = 10_000

Stats = Mapping[str, Any]


# ---- the server under test -------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """Where the dashboard is, and what /api/stats answers there (None: it changes over time)."""

    base_url: str
    stats: Stats | None


class StandInServer:
    """The dashboard's routes and a fixed `GET /api/stats`, on 127.0.0.1 in a thread of its own."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="dashboard-stand-in", daemon=True)
        self._started: Future[str] = Future()

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats, headers={"Cache-Control": "no-store"})

    async def _main(self) -> None:
        app = web.Application()
        dashboard.add_routes(app)
        app.router.add_get("/api/stats", self._stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._started.set_result(f"http://{host}:{port}")
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            if not self._started.done():
                self._started.set_exception(exc)
            raise

    def __enter__(self) -> StandInServer:
        self._thread.start()
        self.url = self._started.result(timeout=30)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the stand-in server did not stop"


@pytest.fixture
def served() -> Iterator[Served]:
    """The server under test: replace this fixture to test a real regcache's admin listener."""
    stats = sample_stats(now=datetime.datetime.now(datetime.UTC).timestamp())
    with StandInServer(stats) as server:
        yield Served(server.url, stats)


def sample_stats(now: float) -> dict[str, Any]:
    """A busy cache, three hours up: an hour of history, downloads, four upstreams, top images."""
    hits, misses, coalesced, stale = 18_234, 1_320, 842, 17
    served_cache, served_upstream = 412_345_678_901, 51_234_567_890
    rng = random.Random(7)
    history = []
    samples = 720
    for i in range(samples):
        progress = (i + 1) / samples
        wobble = 0.04 * math.sin(i / 23) + rng.uniform(-0.012, 0.012)
        history.append(
            {
                "time": now - 5.0 * (samples - i),
                "hit_ratio": round(min(1.0, 0.62 + 0.27 * progress**0.6 + wobble * progress), 4),
                "bytes_saved": int(served_cache * (0.35 + 0.65 * progress**1.3)),
                "bytes_from_upstream": int(served_upstream * (0.55 + 0.45 * progress**0.8)),
            }
        )
    history[-1].update(
        hit_ratio=round(hits / (hits + misses + coalesced + stale), 4),
        bytes_saved=served_cache,
        bytes_from_upstream=served_upstream,
    )

    def image(
        upstream: str, repository: str, tag: str, pulls: int, size: int, ago: float
    ) -> dict[str, Any]:
        digest = "sha256:" + format(rng.getrandbits(256), "064x")
        return {
            "upstream": upstream,
            "repository": repository,
            "tag": tag,
            "digest": digest,
            "pulls": pulls,
            "size": size,
            "last_pulled": now - ago,
        }

    return {
        "version": "0.1.0",
        "uptime_seconds": 11_532.8,
        "cache": {
            "size_bytes": 38_214_567_890,
            "budget_bytes": 50_000_000_000,
            "blobs": 1_284,
            "manifests": 412,
        },
        "requests": {"hits": hits, "misses": misses, "coalesced": coalesced, "stale": stale},
        "hit_ratio": round(hits / (hits + misses + coalesced + stale), 4),
        "bytes_served": {"cache": served_cache, "upstream": served_upstream},
        "bytes_saved": served_cache,
        "downloads": [
            {
                "digest": "sha256:9a1f0c2e4b7d8e6f5a3c1b0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f",
                "upstream": "docker.io",
                "repository": "library/postgres",
                "size": 151_234_567,
                "received": 60_493_827,
                "readers": 3,
            },
            {
                "digest": "sha256:4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d",
                "upstream": "ghcr.io",
                "repository": "actions/actions-runner",
                "size": 48_118_210,
                "received": 45_950_000,
                "readers": 1,
            },
            {
                "digest": "sha256:0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d",
                "upstream": "docker.io",
                "repository": "library/node",
                "size": None,
                "received": 12_582_912,
                "readers": 2,
            },
        ],
        "upstreams": [
            {
                "name": "docker.io",
                "url": "https://registry-1.docker.io",
                "default": True,
                "healthy": True,
                "last_error": "429 Too Many Requests (toomanyrequests: pull rate limit)",
                "rate_limited_for": 42.3,
                "requests": 9_412,
                "bytes": 38_912_345_678,
            },
            {
                "name": "ghcr.io",
                "url": "https://ghcr.io",
                "default": False,
                "healthy": True,
                "last_error": None,
                "rate_limited_for": 0.0,
                "requests": 2_106,
                "bytes": 9_876_543_210,
            },
            {
                "name": "quay.io",
                "url": "https://quay.io",
                "default": False,
                "healthy": False,
                "last_error": "connect to quay.io:443 timed out after 30 s",
                "rate_limited_for": 0.0,
                "requests": 311,
                "bytes": 2_445_679_002,
            },
            {
                "name": "registry.k8s.io",
                "url": "https://registry.k8s.io",
                "default": False,
                "healthy": True,
                "last_error": None,
                "rate_limited_for": 0.0,
                "requests": 87,
                "bytes": 0,
            },
        ],
        "top_images": [
            image("docker.io", "library/alpine", "3.20", 4_211, 3_623_807, 4),
            image("docker.io", "library/python", "3.11-slim", 2_874, 51_534_207, 31),
            image("docker.io", "library/postgres", "16", 1_630, 151_234_567, 95),
            image("ghcr.io", "actions/actions-runner", "2.321.0", 1_502, 712_431_994, 12),
            image("docker.io", "library/node", "22-bookworm", 1_207, 402_118_330, 260),
            image("docker.io", "library/nginx", "1.27", 1_101, 71_245_114, 48),
            image("quay.io", "prometheus/prometheus", "v2.55.1", 766, 112_780_042, 3_600),
            image("docker.io", "library/redis", "7.4", 702, 45_901_871, 620),
            image("registry.k8s.io", "pause", "3.10", 655, 320_368, 1_850),
            image("docker.io", "library/golang", "1.23", 388, 823_514_004, 7_400),
            image("docker.io", "library/ubuntu", "24.04", 301, 29_754_290, 15_000),
            image("ghcr.io", "astral-sh/uv", "0.5", 244, 17_211_907, 900),
            image(
                "docker.io",
                "pytorch/pytorch",
                "2.5.1-cuda12.4-cudnn9-runtime",
                12,
                3_371_662_883,
                86_000,
            ),
        ],
        "history": history,
    }


# ---- the formatters the page documents, in Python ----------------------------------------------

BYTE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def to_fixed(value: float, digits: int) -> str:
    """JavaScript's Number.prototype.toFixed: the exact binary value, halves rounded up."""
    quantum = Decimal(1).scaleb(-digits)
    return str(Decimal(value).quantize(quantum, rounding=ROUND_HALF_UP))


def format_percent(ratio: float) -> str:
    return to_fixed(ratio * 100, 1) + "%"


def format_bytes(n: int) -> str:
    if abs(n) < 1000:
        return f"{n} B"
    k = 1
    while k < len(BYTE_UNITS) - 1 and abs(n) >= 1000 ** (k + 1):
        k += 1
    text = to_fixed(n / 1000**k, 1)
    if abs(float(text)) >= 1000 and k < len(BYTE_UNITS) - 1:
        k += 1
        text = to_fixed(n / 1000**k, 1)
    return f"{text} {BYTE_UNITS[k]}"


def format_count(n: int) -> str:
    return f"{n:,}"


def format_duration(seconds: float) -> str:
    s = max(0, math.floor(seconds))
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d}d {h:02d}h"
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {s % 60:02d}s"
    return f"{s}s"


def image_name(item: Stats) -> str:
    ref = f"{item['upstream']}/{item['repository']}"
    if item.get("tag"):
        return f"{ref}:{item['tag']}"
    return f"{ref}@{item['digest'].split(':')[0]}:{item['digest'].split(':')[1][:12]}"


def image_key(item: Stats) -> str:
    tag, digest = item.get("tag") or "", item.get("digest") or ""
    return f"{item['upstream']}/{item['repository']}:{tag}@{digest}"


def top(images: list[Stats], by: str) -> list[Stats]:
    other = "size" if by == "pulls" else "pulls"
    ordered = sorted(images, key=lambda i: (-(i[by] or 0), -(i[other] or 0), image_key(i)))
    return ordered[:10]


# ---- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as instance:
        yield instance


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with browser_context(browser, viewport=LAPTOP) as context:
        yield context.new_page()


def open_dashboard(page: Page, served: Served) -> Stats:
    """Load the page with its timers frozen; return the JSON it fetched, once it is rendered."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.clock.install(time=datetime.datetime.now(datetime.UTC))
    page.clock.pause_at(datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1))
    with page.expect_response(is_stats) as answer:
        response = page.goto(served.base_url + "/")
    assert response is not None and response.ok
    fetched: Stats = answer.value.json()
    expect(page.locator("body")).to_have_attribute("data-renders", "1", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "live")
    if served.stats is not None:
        assert fetched == json.loads(json.dumps(served.stats))
    assert errors == []
    return fetched


def is_stats(response: Response) -> bool:
    return response.url.endswith("/api/stats")


def poll_once(page: Page, renders: int | None = None) -> None:
    """Let the page's 2-second timer fire once (and, when given, wait for that render)."""
    page.clock.run_for(POLL_MS)
    if renders is not None:
        expect(page.locator("body")).to_have_attribute(
            "data-renders", str(renders), timeout=TIMEOUT_MS
        )


def shown(page: Page, test_id: str) -> tuple[str, str | None]:
    element = page.get_by_test_id(test_id)
    return element.inner_text(), element.get_attribute("data-value")


# ---- the tests ----------------------------------------------------------------------------------


def test_the_figures_match_the_stats_json_exactly(page: Page, served: Served) -> None:
    stats = open_dashboard(page, served)
    requests, cache, bytes_served = stats["requests"], stats["cache"], stats["bytes_served"]
    total_served = bytes_served["cache"] + bytes_served["upstream"]
    share = bytes_served["cache"] / total_served if total_served else 0
    fill = cache["size_bytes"] / cache["budget_bytes"] if cache["budget_bytes"] else 0
    downloads = stats["downloads"]
    expected: dict[str, tuple[str, float | int | str]] = {
        "version": (f"v{stats['version']}", stats["version"]),
        "uptime": (format_duration(stats["uptime_seconds"]), stats["uptime_seconds"]),
        "hit-ratio": (format_percent(stats["hit_ratio"]), stats["hit_ratio"]),
        "requests-hits": (format_count(requests["hits"]), requests["hits"]),
        "requests-misses": (format_count(requests["misses"]), requests["misses"]),
        "requests-coalesced": (format_count(requests["coalesced"]), requests["coalesced"]),
        "requests-stale": (format_count(requests["stale"]), requests["stale"]),
        "bytes-saved": (format_bytes(stats["bytes_saved"]), stats["bytes_saved"]),
        "bytes-served-cache": (format_bytes(bytes_served["cache"]), bytes_served["cache"]),
        "bytes-served-upstream": (format_bytes(bytes_served["upstream"]), bytes_served["upstream"]),
        "bytes-cache-share": (format_percent(share), share),
        "cache-size": (format_bytes(cache["size_bytes"]), cache["size_bytes"]),
        "cache-budget": (format_bytes(cache["budget_bytes"]), cache["budget_bytes"]),
        "cache-fill": (format_percent(fill), fill),
        "cache-blobs": (format_count(cache["blobs"]), cache["blobs"]),
        "cache-manifests": (format_count(cache["manifests"]), cache["manifests"]),
        "downloads-count": (format_count(len(downloads)), len(downloads)),
        "downloads-readers": (
            format_count(sum(d["readers"] for d in downloads)),
            sum(d["readers"] for d in downloads),
        ),
        "downloads-received": (
            format_bytes(sum(d["received"] for d in downloads)),
            sum(d["received"] for d in downloads),
        ),
        "upstreams-count": (format_count(len(stats["upstreams"])), len(stats["upstreams"])),
    }
    for test_id, (text, raw) in expected.items():
        shown_text, shown_raw = shown(page, test_id)
        assert shown_text == text, test_id
        assert shown_raw is not None, test_id
        if isinstance(raw, str):
            assert shown_raw == raw, test_id
        else:
            assert float(shown_raw) == raw, test_id

    meter = page.get_by_test_id("cache-meter")
    assert meter.get_attribute("aria-valuenow") == to_fixed(min(fill, 1) * 100, 1)
    assert_bar_width(page, meter, ".meter-fill", min(fill, 1))

    for by, table in (("pulls", "top-pulls"), ("size", "top-size")):
        rows = page.get_by_test_id(f"{table}-row")
        wanted = top(list(stats["top_images"]), by)
        expect(rows).to_have_count(len(wanted))
        for i, item in enumerate(wanted):
            row = rows.nth(i)
            assert row.get_attribute("data-image") == image_key(item)
            assert row.locator(".image-ref").inner_text() == image_name(item)
            assert row.get_by_test_id("image-pulls").inner_text() == format_count(item["pulls"])
            assert row.get_by_test_id("image-size").inner_text() == format_bytes(item["size"])
            assert (
                float(row.get_by_test_id("image-size").get_attribute("data-value") or "")
                == (item["size"])
            )


def assert_bar_width(page: Page, container: Any, fill_selector: str, fraction: float) -> None:
    """The fill's width is `fraction` of its track's (to within a pixel)."""
    track_box = container.locator(fill_selector).locator("xpath=..").bounding_box()
    fill_box = container.locator(fill_selector).bounding_box()
    assert track_box is not None and fill_box is not None
    assert abs(fill_box["width"] - fraction * track_box["width"]) <= 1.0


def test_in_flight_downloads_show_their_progress(page: Page, served: Served) -> None:
    stats = open_dashboard(page, served)
    downloads = stats["downloads"]
    assert any(d["size"] for d in downloads), "the stats under test need a download of known size"
    rows = page.get_by_test_id("download-row")
    expect(rows).to_have_count(len(downloads))
    for i, download in enumerate(downloads):
        row = rows.nth(i)
        assert row.get_attribute("data-digest") == download["digest"]
        progress = row.get_by_test_id("download-progress")
        readers = row.get_by_test_id("download-readers")
        assert readers.inner_text() == format_count(download["readers"])
        size, received = download["size"], download["received"]
        text = row.get_by_test_id("download-text").inner_text()
        if size is None:
            assert progress.get_attribute("data-indeterminate") == "true"
            assert progress.get_attribute("aria-valuenow") is None
            assert text == f"{format_bytes(received)} · size unknown"
            continue
        fraction = min(received / size, 1) if size else 1
        assert float(progress.get_attribute("data-value") or "nan") == fraction
        assert progress.get_attribute("aria-valuenow") == to_fixed(fraction * 100, 1)
        assert (
            text == f"{format_percent(fraction)} · {format_bytes(received)} of {format_bytes(size)}"
        )
        assert_bar_width(page, progress, ".progress-fill", fraction)


def test_upstream_badges_show_health_errors_and_rate_limits(page: Page, served: Served) -> None:
    stats = open_dashboard(page, served)
    upstreams = stats["upstreams"]
    assert any(u["rate_limited_for"] > 0 for u in upstreams), (
        "the stats under test need a rate-limited upstream"
    )
    items = page.get_by_test_id("upstream")
    expect(items).to_have_count(len(upstreams))
    for i, upstream in enumerate(upstreams):
        item = items.nth(i)
        assert item.get_attribute("data-name") == upstream["name"]
        health = item.get_by_test_id("upstream-health")
        if upstream["healthy"]:
            expect(health).to_have_attribute("data-state", "healthy")
            expect(health).to_have_text("healthy")
        else:
            expect(health).to_have_attribute("data-state", "error")
            expect(health).to_have_text("error")
        rate_limit = item.get_by_test_id("upstream-rate-limit")
        if upstream["rate_limited_for"] > 0:
            expect(rate_limit).to_have_text(
                f"rate limited for {math.ceil(upstream['rate_limited_for'])} s"
            )
            assert (
                float(rate_limit.get_attribute("data-value") or "")
                == (upstream["rate_limited_for"])
            )
        else:
            expect(rate_limit).to_have_count(0)
        error = item.get_by_test_id("upstream-error")
        if upstream["last_error"]:
            expect(error).to_contain_text(upstream["last_error"])
        else:
            expect(error).to_have_count(0)
        assert item.get_by_test_id("upstream-requests").inner_text() == format_count(
            upstream["requests"]
        )
        assert item.get_by_test_id("upstream-bytes").inner_text() == format_bytes(upstream["bytes"])


CHART_PIXELS = """canvas => {
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const ratio = getComputedStyle(document.documentElement).getPropertyValue("--c-ratio").trim();
    const [r, g, b] = [1, 3, 5].map(i => parseInt(ratio.slice(i, i + 2), 16));
    let drawn = 0, line = 0;
    for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] === 0) continue;
        drawn++;
        if (data[i + 3] > 200 && Math.abs(data[i] - r) + Math.abs(data[i + 1] - g)
            + Math.abs(data[i + 2] - b) < 40) line++;
    }
    return {drawn, line, width: canvas.width, height: canvas.height};
}"""


def test_the_chart_merges_history_with_live_samples(page: Page, served: Served) -> None:
    stats = open_dashboard(page, served)
    chart = page.get_by_test_id("chart")
    history = stats["history"]
    series = page.evaluate("window.regcacheDashboard.series")
    pixels = chart.evaluate(CHART_PIXELS)
    assert pixels["width"] > 300 and pixels["height"] > 150
    assert pixels["drawn"] > 2000, pixels  # axes, grid, the area and the lines
    # The hit-ratio line, in its own colour (a freshly started server has a dot at most).
    span = series[-1]["t"] - series[0]["t"] if series else 0
    assert pixels["line"] > (100 if span >= 60 else 0), pixels

    assert [p["t"] for p in series[: len(history)]] == [s["time"] for s in history]
    # The default 15-minute window: the samples of the last 15 minutes are plotted.
    window_start = series[-1]["t"] - 900
    assert chart.get_attribute("data-points") == str(
        sum(1 for p in series if p["t"] >= window_start)
    )

    # The next poll adds a live sample after the server's last one.
    poll_once(page, renders=2)
    series = page.evaluate("window.regcacheDashboard.series")
    fetched = page.evaluate("window.regcacheDashboard.stats")
    live = series[-1]
    assert live["t"] > (history[-1]["time"] if history else 0)
    assert live["ratio"] == fetched["hit_ratio"]
    assert live["saved"] == fetched["bytes_saved"]
    assert live["upstream"] == fetched["bytes_served"]["upstream"]

    # Hovering shows the values of the nearest sample.
    box = chart.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] - 70, box["y"] + box["height"] / 2)
    tip = page.get_by_test_id("chart-tip")
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("hit ratio")


def test_a_failing_stats_endpoint_shows_connection_lost_and_recovers(
    page: Page, served: Served
) -> None:
    open_dashboard(page, served)
    status = page.get_by_test_id("connection-status")
    banner = page.get_by_test_id("connection-lost")
    expect(banner).to_be_hidden()

    page.route("**/api/stats", lambda route: route.fulfill(status=503, body="overloaded"))
    poll_once(page)
    expect(status).to_have_attribute("data-state", "lost")
    expect(status).to_have_text("Connection lost")
    expect(banner).to_be_visible()
    expect(page.get_by_test_id("connection-error")).to_contain_text("HTTP 503")
    expect(page.locator("body")).to_have_class("stale")
    # The last good figures stay on the page, greyed.
    expect(page.get_by_test_id("hit-ratio")).not_to_have_text(PLACEHOLDER)
    BUILD.mkdir(exist_ok=True)
    page.screenshot(path=BUILD / "dashboard-lost.png")

    page.unroute("**/api/stats")
    page.route("**/api/stats", lambda route: route.abort("connectionrefused"))
    poll_once(page)
    expect(page.get_by_test_id("connection-error")).to_contain_text("network error")
    expect(status).to_have_attribute("data-state", "lost")

    # It keeps retrying: once the endpoint answers again the page is live again.
    page.unroute("**/api/stats")
    poll_once(page, renders=2)
    expect(status).to_have_attribute("data-state", "live")
    expect(banner).to_be_hidden()
    expect(page.locator("body")).not_to_have_class("stale")


def test_the_formatters_agree_with_their_documentation(page: Page, served: Served) -> None:
    open_dashboard(page, served)
    sizes = [0, 1, 999, 1000, 1049, 1050, 1051, 1_234_567, 999_949, 999_950, 999_999,
             10 * 1000**3, 2**40, 50_000_000_000, 999_950_000_000_000, 10**18]  # fmt: skip
    got = page.evaluate("sizes => sizes.map(n => window.regcacheDashboard.formatBytes(n))", sizes)
    assert got == [format_bytes(n) for n in sizes]
    ratios = [0, 0.0005, 0.00049, 0.6667, 0.12345, 0.99995, 1]
    got = page.evaluate(
        "ratios => ratios.map(r => window.regcacheDashboard.formatPercent(r))", ratios
    )
    assert got == [format_percent(r) for r in ratios]
    durations = [0, 59.9, 60, 187, 3600, 7_530, 11_532.8, 86_400 * 3 + 4 * 3600]
    got = page.evaluate("ds => ds.map(d => window.regcacheDashboard.formatDuration(d))", durations)
    assert got == [format_duration(d) for d in durations]
    assert format_bytes(1536) == "1.5 kB" and format_bytes(999_999) == "1.0 MB"


def test_the_page_is_served_with_a_strict_policy(page: Page, served: Served) -> None:
    response = page.request.get(served.base_url + "/")
    assert response.ok
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    for name in ("dashboard.css", "dashboard.js"):
        assert page.request.get(f"{served.base_url}/static/{name}").ok
    for name in ("missing.js", "..%2F__init__.py", "__init__.py"):
        assert page.request.get(f"{served.base_url}/static/{name}").status == 404


def test_screenshots(browser: Browser, served: Served) -> None:
    """build/dashboard.png at 1366x768 (also the whole page, 1920x1080 and dark) to look at."""
    BUILD.mkdir(exist_ok=True)
    for name, viewport, dark in (
        ("dashboard.png", LAPTOP, False),
        ("dashboard-1920.png", DESKTOP, False),
        ("dashboard-dark.png", LAPTOP, True),
    ):
        with browser_context(browser, viewport=viewport, dark=dark) as context:
            page = context.new_page()
            open_dashboard(page, served)
            page.screenshot(path=BUILD / name)
            assert (BUILD / name).stat().st_size > 10_000
            if name == "dashboard.png":
                page.screenshot(path=BUILD / "dashboard-full.png", full_page=True)


# ---- a real regcache, while a pull is running ---------------------------------------------------


@dataclass
class LiveCache:
    server: Regcache
    main: Relay
    layer: str


@pytest.fixture
def live(
    upstream: Registry, images: dict[str, PushedImage], start: StartRegcache, tmp_path: Path
) -> Iterator[LiveCache]:
    """A regcache with a download held half-way and a rate-limited second upstream."""
    with running_relay(upstream.url) as main, running_relay(upstream.url) as limited:
        config = tmp_path / "regcache.toml"
        config.write_text(
            'default_upstream = "main"\n'
            f'[[upstreams]]\nname = "main"\nurl = "{main.url}"\n'
            f'[[upstreams]]\nname = "limited"\nurl = "{limited.url}"\n'
        )
        server = start(None, args=("--config", str(config)))
        limited.fault = Fault(status=429, retry_after="600", every_request=True)
        assert request(server.url, "GET", "/v2/limited/a/b/manifests/v1").status == 429
        image = images["library/docker-img:latest"]
        small, layer = image.blob_digests[0], image.blob_digests[1]
        for _ in ("miss", "hit"):
            assert request(server.url, "GET", f"/v2/{image.name}/blobs/{small}").status == 200
            server.settle()
        main.reset(Fault(stall_after=256 * 1024, times=1))
        pull = threading.Thread(
            target=lambda: request(server.url, "GET", f"/v2/{image.name}/blobs/{layer}")
        )
        pull.start()
        assert main.stalled.wait(30)
        try:
            yield LiveCache(server, main, layer)
        finally:
            main.release_stall()
            pull.join(60)


def test_a_live_cache_during_a_pull_matches_its_metrics(page: Page, live: LiveCache) -> None:
    stats = open_dashboard(page, Served(live.server.admin_url, None))
    metrics = request(live.server.admin_url, "GET", "/metrics").body.decode()

    def metric(line_start: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith(line_start)
        )

    assert shown(page, "requests-hits")[1] == str(
        int(metric('regcache_responses_total{cache="HIT"'))
    )
    assert shown(page, "requests-misses")[1] == str(
        int(metric('regcache_responses_total{cache="MISS"'))
    )
    assert shown(page, "requests-hits")[1] == str(stats["requests"]["hits"]) == "1"
    assert shown(page, "cache-size")[1] == str(int(metric("regcache_cache_size_bytes")))
    assert shown(page, "downloads-count")[1] == "1"
    [download] = stats["downloads"]
    assert download["digest"] == live.layer
    row = page.get_by_test_id("download-row")
    expect(row).to_have_count(1)
    progress = float(row.get_by_test_id("download-progress").get_attribute("data-value") or "0")
    assert 0 < progress < 1
    limited = page.locator('[data-testid="upstream"][data-name="limited"]')
    expect(limited.get_by_test_id("upstream-rate-limit")).to_be_visible()
    BUILD.mkdir(exist_ok=True)
    page.screenshot(path=BUILD / "dashboard-live.png", full_page=True)
