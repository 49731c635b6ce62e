"""The operators' console: a static page and its scripts, served by `fleet serve` at `/`.

The page holds no data: it signs in with a token the user pastes (kept in the tab's
`sessionStorage`) and reads everything through the documented REST API with a bearer header,
so these routes are open (no token) and answer only the files of `fleet/api/static/`, by a
fixed list of names. Every answer carries a Content-Security-Policy that allows scripts,
styles and connections from this origin only: no inline script, no `eval`, no other host.
The routes are not part of the API (they are not in the routes table nor the OpenAPI
document); `PATHS` lists them for the auth middleware.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from fleet.api.errors import Problem

INDEX = "/"
ASSET = "/console/{asset}"
PATHS = frozenset({INDEX, ASSET})

_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _assets() -> dict[str, bytes]:
    """Every shipped file by name, read once (the package directory, or the wheel's copy)."""
    folder = resources.files("fleet.api") / "static"
    out: dict[str, bytes] = {}
    for item in folder.iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in _TYPES:
            out[item.name] = item.read_bytes()
    return out


_CACHE: dict[str, bytes] = {}


def _file(name: str) -> web.Response:
    if not _CACHE:
        _CACHE.update(_assets())
    body = _CACHE.get(name)
    if body is None:
        raise Problem(404, f"no console file named {name!r}")
    ctype = _TYPES["." + name.rsplit(".", 1)[-1]]
    return web.Response(body=body, content_type=ctype, charset="utf-8", headers=HEADERS)


async def index(request: web.Request) -> web.Response:
    """The console's page (its sign-in form until a token is given)."""
    return _file("index.html")


async def asset(request: web.Request) -> web.Response:
    return _file(request.match_info["asset"])


def add_console(app: web.Application) -> None:
    app.router.add_get(INDEX, index, allow_head=False)
    app.router.add_get(ASSET, asset, allow_head=False)
