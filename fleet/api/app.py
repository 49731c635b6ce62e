"""The aiohttp application: routes from the table, problem+json errors, bearer-token auth, logs.

`create_app(fleet)` serves an already running `Fleet` (tests, embedding). `fleet serve` uses
`fleet.api.server.service_app`, which opens the Fleet itself inside a cleanup context. Either way
the middlewares are, outermost first:

1. `problems`: every error leaves as `application/problem+json` (aiohttp's own 404/405/413 too);
   an unexpected exception is logged with its traceback and answered 500 without details; a client
   that goes away while it is answered is logged (status 499) without a traceback.
2. `authenticate`: every route but `/healthz` and the console's files (`fleet.api.console`: the
   page at `/` and its scripts, which hold no data) needs `Authorization: Bearer <token>`; a
   missing or unknown token is 401, a role below the route's is 403. Unmatched paths need a token
   as well, so the API's shape is not visible to anonymous callers.

Between the two, `fleet.api.limits.request_slots` bounds how many requests are authenticated and
handled at once (`max_requests`); the others wait their turn.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from fleet.api import console, limits
from fleet.api.context import (
    CACHE,
    CONFIG,
    FLEET,
    IDENTITY,
    ROUTES,
    STOPPING,
    TOKENS,
    ApiConfig,
)
from fleet.api.errors import Problem, http_problem, problem_for
from fleet.api.route import Route
from fleet.api.routes import ROUTES as TABLE
from fleet.service import Fleet
from fleet.tokens import TokenStore

log = structlog.get_logger("fleet.api")

_QUIET = frozenset({"/healthz", "/metrics", "/readyz"})


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except Problem as exc:
        status = exc.status
        return exc.response(request.path)
    except asyncio.CancelledError:
        status = 499  # the client went away, or the server is stopping
        raise
    except ConnectionResetError:  # the client went away while it was answered: a normal end
        status = 499
        return web.Response(status=status)  # never sent: aiohttp sees the closed connection
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        status = exc.status
        return http_problem(exc).response(request.path)
    except Exception as exc:
        problem = problem_for(exc)
        if problem is None:
            log.exception("request_failed", method=request.method, path=request.path)
            problem = Problem(500, "internal error; the service log has the details")
        status = problem.status
        return problem.response(request.path)
    finally:
        _access(request, status, time.monotonic() - started)


def _access(request: web.Request, status: int, seconds: float) -> None:
    identity = request.get(IDENTITY)
    fields = {
        "method": request.method,
        "path": request.path,
        "status": status,
        "ms": round(seconds * 1000, 1),
        "caller": identity.name if identity is not None else None,
    }
    if request.path in _QUIET or (request.method == "GET" and status < 400):
        log.debug("request_handled", **fields)
    else:
        log.info("request_handled", **fields)


def _route_index(routes: tuple[Route, ...]) -> dict[tuple[str, str], Route]:
    return {(r.method, r.path): r for r in routes}


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def make_authenticate(routes: tuple[Route, ...]) -> Middleware:
    index = _route_index(routes)

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = None
        if resource is not None:
            if request.method == "GET" and resource.canonical in console.PATHS:
                return await handler(request)
            route = index.get((request.method, resource.canonical))
        if route is not None and route.role is None:
            return await handler(request)
        challenge = {"WWW-Authenticate": 'Bearer realm="fleet"'}
        token = _bearer(request)
        if token is None:
            raise Problem(401, "a bearer token is required", headers=challenge)
        identity = await request.app[TOKENS].verify(token)
        if identity is None:
            raise Problem(401, "the bearer token is unknown or revoked", headers=challenge)
        request[IDENTITY] = identity
        structlog.contextvars.bind_contextvars(caller=identity.name)
        needed = route.role if route is not None else None
        if needed is not None and not identity.role.allows(needed):
            raise Problem(
                403, f"this needs the {needed.value} role; the token is {identity.role.value}"
            )
        return await handler(request)

    return authenticate


async def _stop_streams(app: web.Application) -> None:
    """On shutdown, tell event streams to finish so the server does not wait on them."""
    app[STOPPING].set()


ENGINE_ONLY = frozenset({"/healthz", "/readyz", "/metrics"})  # what `--role engine` serves


def build_app(config: ApiConfig | None = None, *, engine_only: bool = False) -> web.Application:
    """The app without a Fleet: the caller sets FLEET and TOKENS (or a cleanup context does).
    `engine_only` (`fleet serve --role engine`): health, readiness and metrics, nothing else."""
    config = config or ApiConfig()
    table = tuple(r for r in TABLE if r.path in ENGINE_ONLY) if engine_only else TABLE
    app = web.Application(
        middlewares=[problems, limits.request_slots, make_authenticate(table)],
        client_max_size=config.max_body,
    )
    app[CONFIG] = config
    app[ROUTES] = table
    app[STOPPING] = asyncio.Event()
    app[CACHE] = {}
    limits.install(app)
    for route in table:
        if route.method == "GET":
            app.router.add_get(route.path, route.handler, allow_head=False)
        else:
            app.router.add_route(route.method, route.path, route.handler)
    if not engine_only:
        console.add_console(app)
    app.on_shutdown.append(_stop_streams)
    return app


def create_app(fleet: Fleet, *, config: ApiConfig | None = None) -> web.Application:
    """The API over a Fleet that is already open; tokens live in its database."""
    app = build_app(config)
    app[FLEET] = fleet
    app[TOKENS] = TokenStore(fleet.store.db)
    return app


__all__ = ["ApiConfig", "build_app", "create_app"]
