"""The simulator's aiohttp application: middleware, the `/_sim` control plane, and the dialects."""

from __future__ import annotations

import email.utils
import random
import string
from collections.abc import Awaitable, Callable
from datetime import UTC

from aiohttp import web

from fleet.simulator import (
    huawei_bms,
    huawei_create,
    huawei_ecs,
    huawei_iam,
    keystone,
    nova,
    unrouted,
)
from fleet.simulator.control import apply_spec_limits_and_faults
from fleet.simulator.control import setup as setup_control
from fleet.simulator.core import (
    CTX,
    DROP,
    ENTRY,
    LOST,
    SIM,
    Credentials,
    SimContext,
    SimReply,
    ctx_of,
    entry_of,
)
from fleet.simulator.world import World
from fleet.simulator.worldgen import WorldSpec, build_world

_OPENSTACK_PREFIXES = ("/identity", "/compute")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def sim_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Settle due transitions, log the call, answer SimReply, stamp request ids, drop if asked."""
    ctx = ctx_of(request)
    ctx.world.settle()
    entry = ctx.log.start(request)
    request[ENTRY] = entry
    if request.path.startswith("/_sim"):
        entry["dialect"] = SIM
    try:
        response: web.StreamResponse = await handler(request)
    except SimReply as reply:
        response = reply.response
    except web.HTTPException as exc:
        response = _http_error(request, exc, entry)
    entry["status"] = response.status
    request_id = entry_request_id(entry)
    response.headers["X-Request-Id"] = request_id
    # The cloud's clock is the simulated one (what `updated` and `changes-since` use), as a real
    # cloud's `Date` and its timestamps come from one clock.
    response.headers["Date"] = email.utils.format_datetime(
        ctx.world.clock.now().astimezone(UTC), usegmt=True
    )
    if request.path.startswith(_OPENSTACK_PREFIXES):
        response.headers["X-Openstack-Request-Id"] = f"req-{request_id}"
    if request.get(DROP) and request.transport is not None:
        entry["dropped"] = True
        request.transport.abort()
    if LOST in request:  # the log keeps what was performed; the caller sees the error
        lost = request[LOST]
        entry["lost_answer"] = lost.status
        for name in ("X-Request-Id", "Date", "X-Openstack-Request-Id"):
            if name in response.headers:
                lost.headers[name] = response.headers[name]
        return lost
    return response


def _http_error(
    request: web.Request, exc: web.HTTPException, entry: dict[str, object]
) -> web.Response:
    """An aiohttp HTTP error as an answer: a path no route serves (or a method it does not serve)
    gets the refusal of the dialect that owns the path (see `unrouted`)."""
    if request.match_info.http_exception is exc:
        refused = unrouted.refusal(request.path, exc, lambda: entry_request_id(entry))
        if refused is not None:
            entry["dialect"] = entry.get("dialect") or refused[0]
            return refused[1]
    # Returning the exception object itself is deprecated in aiohttp: answer with a copy.
    return web.Response(status=exc.status, reason=exc.reason, body=exc.body, headers=exc.headers)


def entry_request_id(entry: dict[str, object]) -> str:
    rid = entry.get("request_id")
    if not isinstance(rid, str):
        rid = f"{entry['seq']:08x}" + "".join(random.choices(string.hexdigits.lower(), k=24))
        entry["request_id"] = rid
    return rid


def make_credentials(seed: int) -> Credentials:
    rng = random.Random(seed * 7919 + 1)
    ak = "".join(rng.choices(string.ascii_uppercase + string.digits, k=20))
    sk = "".join(rng.choices(string.ascii_letters + string.digits, k=40))
    return Credentials(huawei_ak=ak, huawei_sk=sk)


def build_app(spec: WorldSpec | None = None, world: World | None = None) -> web.Application:
    """The whole simulator as one aiohttp application (no socket yet)."""
    spec = spec or WorldSpec()
    ctx = SimContext(world=world or build_world(spec), credentials=make_credentials(spec.seed))
    apply_spec_limits_and_faults(ctx, spec)
    app = web.Application(middlewares=[sim_middleware], client_max_size=16 * 1024 * 1024)
    app[CTX] = ctx
    setup_control(app)
    for dialect in (huawei_iam, huawei_ecs, huawei_bms, huawei_create, nova, keystone):
        dialect.setup(app)
    return app


__all__ = ["build_app", "entry_of"]
