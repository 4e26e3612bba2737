"""Debian's Chromium, headless, driven by Playwright's sync API.

Playwright's own browser downloads are never used (`playwright install` is not run): the
browser is Debian's package `chromium` at /usr/bin/chromium (or $REGCACHE_TEST_CHROMIUM).

The sync API runs its own event loop in a greenlet, so it must be used from plain (non-async)
tests and fixtures, where pytest-asyncio runs no loop in the thread. A server that the browser
talks to must then run in another thread or process (see the dashboard tests).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, sync_playwright

DEFAULT_CHROMIUM = Path("/usr/bin/chromium")

# Headless, as root in a container, with no network but loopback: no sandbox (it needs user
# namespaces), no GPU, /tmp instead of a small /dev/shm, and none of the background traffic
# that this machine's closed network would refuse.
LAUNCH_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)

LAPTOP = {"width": 1366, "height": 768}
DESKTOP = {"width": 1920, "height": 1080}


class ChromiumMissing(RuntimeError):
    """The browser (or Playwright) is not installed; the message says how to install it."""


def chromium_path() -> Path:
    path = Path(os.environ.get("REGCACHE_TEST_CHROMIUM") or DEFAULT_CHROMIUM)
    if not (path.is_file() and os.access(path, os.X_OK)):
        found = shutil.which("chromium")
        raise ChromiumMissing(
            f"no Chromium at {path}"
            + (f" (one is at {found}: set REGCACHE_TEST_CHROMIUM)" if found else "")
            + "; install Debian's package: apt-get install -y chromium"
        )
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    """One headless Chromium for as long as the block runs; closed (and its driver) after."""
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=list(LAUNCH_ARGS), timeout=60_000
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def browser_context(
    browser: Browser,
    *,
    viewport: dict[str, int] | None = None,
    dark: bool = False,
    timezone: str = "UTC",
) -> Iterator[BrowserContext]:
    """A fresh profile (no cookies, no storage) with a fixed viewport, time zone and locale."""
    context = browser.new_context(
        viewport={"width": (viewport or LAPTOP)["width"], "height": (viewport or LAPTOP)["height"]},
        device_scale_factor=1,
        color_scheme="dark" if dark else "light",
        locale="en-US",
        timezone_id=timezone,
        reduced_motion="reduce",
    )
    try:
        yield context
    finally:
        context.close()
