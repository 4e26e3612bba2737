"""The operator dashboard: a static page (no build step, no third-party assets) and its routes.

The page is `static/index.html`; it loads `static/dashboard.css` and `static/dashboard.js` and
polls `api/stats` every 2 seconds. Every URL in the page is relative, so the dashboard works at
the root of the admin listener (`/`, `/static/<file>`, `/api/stats`) and behind a reverse proxy
that mounts it under a prefix ending in `/`.

`add_routes(app)` adds `GET /` and `GET /static/{name}` to an aiohttp application; the stats
endpoint itself belongs to the admin API.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_DIR", "add_routes", "index", "static_file"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

CONTENT_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
}

# The page needs nothing but its own origin: scripts and styles from /static, data from /api.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_HEADERS = {
    # Revalidate on every load (ETag / Last-Modified make that cheap) so an upgrade is seen at once.
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _file_response(path: Path, *, page: bool = False) -> web.FileResponse:
    headers = dict(_HEADERS)
    headers["Content-Type"] = f"{CONTENT_TYPES[path.suffix]}; charset=utf-8"
    if page:
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        headers["X-Frame-Options"] = "DENY"
    return web.FileResponse(path, headers=headers)


async def index(request: web.Request) -> web.StreamResponse:
    """`GET /`: the dashboard page."""
    return _file_response(STATIC_DIR / "index.html", page=True)


async def static_file(request: web.Request) -> web.StreamResponse:
    """`GET /static/{name}`: one of the page's own files, by exact name (no sub-directories)."""
    name = request.match_info["name"]
    path = STATIC_DIR / name
    if "/" in name or name.startswith(".") or path.suffix not in CONTENT_TYPES:
        raise web.HTTPNotFound()
    if not path.is_file():
        raise web.HTTPNotFound()
    return _file_response(path, page=path.suffix == ".html")


def add_routes(app: web.Application, prefix: str = "") -> None:
    """Serve the dashboard at `{prefix}/` and its files at `{prefix}/static/{name}` (GET, HEAD)."""
    app.router.add_get(f"{prefix}/", index)
    app.router.add_get(f"{prefix}/static/{{name}}", static_file)
