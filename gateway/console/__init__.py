"""Serves the web console: static files shipped with the package, under /console/.

The console is plain HTML, CSS and ES modules (no build step, no CDN); it talks to the gateway
through the public REST and WebSocket APIs of the same origin, and keeps its tokens in memory.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).with_name("static")
PREFIX = "/console/"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
_NAME = re.compile(r"[a-z0-9_-]{1,64}\.[a-z]{2,4}")


def _files() -> dict[str, tuple[bytes, str]]:
    """Every console file, read once: the set is fixed, so no request names a path on disk."""
    files = {}
    for path in sorted(STATIC.iterdir()):
        if path.is_file() and _NAME.fullmatch(path.name) and path.suffix in _TYPES:
            files[path.name] = (path.read_bytes(), _TYPES[path.suffix])
    return files


def _headers(request: web.Request, content_type: str) -> dict[str, str]:
    """Only this origin may be talked to or framing the page; no inline script or style."""
    host = request.host
    return {
        "Content-Type": content_type,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'"
        ),
    }


def install_routes(app: web.Application) -> None:
    """GET / and GET /console redirect to /console/; GET /console/{file} serves one file."""
    files = _files()

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(PREFIX)

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name") or "index.html"
        found = files.get(name)
        if found is None:
            raise web.HTTPNotFound()
        body, content_type = found
        return web.Response(body=body, headers=_headers(request, content_type))

    app.router.add_get("/", redirect)
    app.router.add_get("/console", redirect)
    app.router.add_get(PREFIX, serve)
    app.router.add_get(PREFIX + "{name}", serve)
