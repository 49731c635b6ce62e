"""Health, readiness, metrics, the OpenAPI document, and token administration."""

from __future__ import annotations

import json

from aiohttp import web

from fleet.api import metrics
from fleet.api.context import (
    CACHE,
    TOKENS,
    fleet_of,
    identity_of,
    json_response,
    read_body,
    routes_of,
)
from fleet.api.errors import Problem
from fleet.api.openapi import document
from fleet.api.schemas import (
    CredentialOut,
    HealthOut,
    ReadyOut,
    TokenCreated,
    TokenCreateIn,
    TokenList,
    TokenOut,
    WhoAmIOut,
)
from fleet.service import Fleet
from fleet.tokens import TokenError, TokenInfo
from jobs.sharedlimit import SharedRateLimiter


async def healthz(request: web.Request) -> web.Response:
    """Open (no token): the process answers. Says nothing else about the service."""
    return json_response(HealthOut(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and no endpoint's credentials failed; the engine's state,
    the endpoints and each endpoint's credential state (`fleet.readiness`) are reported too."""
    fleet = fleet_of(request)
    checks: dict[str, str] = {}
    try:
        await fleet.operations.list(None, 1)
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready", and the reason is worth showing
        checks["database"] = f"error: {type(exc).__name__}"
    checks["engine"] = (
        ("running" if fleet.runtime.running else "stopped")
        if fleet.runs_engine
        else "elsewhere (role api)"
    )
    checks.update(replica_checks(fleet))
    checks["endpoints"] = str(len(fleet.drivers))
    states = {} if fleet.credentials is None else await fleet.credentials.states()
    failed = sorted(name for name, s in states.items() if s.state == "failed")
    checks["credentials"] = f"failed: {', '.join(failed)}" if failed else "ok"
    ready = checks["database"] == "ok" and not failed and checks["worker_lock"] != "lost"
    out = ReadyOut(
        status="ready" if ready else "not ready",
        checks=checks,
        credentials={
            name: CredentialOut(state=s.state, reason=s.reason, checked_at=s.checked_at)
            for name, s in states.items()
        },
    )
    return json_response(out, 200 if ready else 503)


def replica_checks(fleet: Fleet) -> dict[str, str]:
    """This replica's part: its worker name, whether it holds its name's lock (`held`, `lost`:
    not ready, or `none` without an engine), whether it leads the policy scheduler (`yes`, `no`,
    `off` with policies disabled), and how rate budgets are kept (`shared` through the database
    by every replica, or `local` to this one process on SQLite)."""
    identity, policies = fleet.identity, fleet.policies
    return {
        "worker": fleet.runtime.config.worker,
        "worker_lock": "none" if identity is None else "held" if identity.held else "lost",
        "leader": "off" if policies is None else "yes" if policies.leading else "no",
        "budgets": "shared" if isinstance(fleet.limiter, SharedRateLimiter) else "local",
    }


async def whoami(request: web.Request) -> web.Response:
    """The calling token's name and role (what the console shows and which buttons it enables)."""
    identity = identity_of(request)
    return json_response(WhoAmIOut(name=identity.name, role=identity.role))


async def prometheus(request: web.Request) -> web.Response:
    """The Prometheus text format 0.0.4, or OpenMetrics 1.0 when the scrape's Accept asks for it."""
    body, content_type = await metrics.render(fleet_of(request), request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type, "Vary": "Accept"})


async def openapi(request: web.Request) -> web.Response:
    """Generated from the routes table and the schemas, once per app."""
    cache = request.app[CACHE]
    text = cache.get("openapi")
    if text is None:
        doc = document(routes_of(request.app), sorted(fleet_of(request).drivers))
        text = cache["openapi"] = json.dumps(doc)
    return web.Response(text=text, content_type="application/json")


def _token_out(info: TokenInfo) -> TokenOut:
    return TokenOut(
        name=info.name, role=info.role, created_at=info.created_at, revoked=info.revoked
    )


async def list_tokens(request: web.Request) -> web.Response:
    infos = await request.app[TOKENS].all()
    return json_response(TokenList(items=[_token_out(i) for i in infos]))


async def create_token(request: web.Request) -> web.Response:
    body = await read_body(request, TokenCreateIn)
    now = fleet_of(request).operations.clock.now()
    try:
        info, token = await request.app[TOKENS].create(body.name, body.role, now)
    except TokenError as exc:
        status = 409 if "exists" in exc.message else 422
        raise Problem(status, str(exc), field=exc.field) from None
    out = TokenCreated(**_token_out(info).model_dump(), token=token)
    return json_response(out, 201, {"Location": f"/v1/tokens/{info.name}"})


async def revoke_token(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    info = await request.app[TOKENS].revoke(name)
    if info is None:
        raise Problem(404, f"no token named {name!r}")
    return json_response(_token_out(info))
