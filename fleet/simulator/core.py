"""What every dialect handler shares: the simulator context, `admit()`, replies and the request log.

A dialect handler calls `await admit(request, dialect=..., rate_key=..., servers=[...])` before it
acts. `admit` records the call in the request log, applies injected faults (latency, timeout,
throttle, 5xx bursts, accept-then-drop) and the rate limit of `rate_key`, and raises `SimReply`
with the dialect's own error or throttling body when the call must not go through.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta

from aiohttp import web

from fleet.simulator.faults import FaultPlan
from fleet.simulator.instance_actions import Actor, acting
from fleet.simulator.limits import RateLimits
from fleet.simulator.world import World

# Dialects, as written in the request log and used to pick error formats.
HUAWEI = "huawei"  # Huawei v1 APIs (ECS, BMS, jobs) and IAM
HUAWEI_NOVA = "huawei-nova"  # Huawei native OpenStack v2.1 on the ECS endpoint
KEYSTONE = "keystone"  # OpenStack identity
OPENSTACK = "openstack"  # OpenStack / EasyStack compute
SIM = "sim"  # the simulator's own /_sim routes

_NOVA_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    409: "conflictingRequest",
    413: "overLimit",
    429: "overLimit",
    500: "computeFault",
    501: "notImplemented",
    503: "serviceUnavailable",
}
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
}


class SimReply(Exception):
    """Raised by handlers to answer at once with a prepared response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(frozen=True)
class Credentials:
    """The simulator's accounts (printed by the banner, served by /_sim/endpoints)."""

    huawei_ak: str
    huawei_sk: str
    huawei_user: str = "fleet-sim"
    huawei_password: str = "sim-password"
    huawei_domain: str = "fleet-sim-domain"
    huawei_region: str = "sim-region-1"
    os_user: str = "admin"
    os_password: str = "sim-password"
    os_project: str = "fleet-sim"
    os_domain: str = "Default"
    os_region: str = "RegionOne"


@dataclass
class Token:
    value: str
    scope: str  # HUAWEI or KEYSTONE
    project_id: str
    expires_at: float  # simulated seconds


@dataclass
class RequestLog:
    """Every request the simulator received, in order (bounded)."""

    entries: deque[dict[str, object]] = field(default_factory=lambda: deque(maxlen=500_000))
    seq: int = 0

    def start(self, request: web.Request) -> dict[str, object]:
        self.seq += 1
        entry: dict[str, object] = {
            "seq": self.seq,
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "dialect": None,
            "rate_key": None,
            "action": None,
            "status": None,
            "time": time.time(),
            "server_ids": [],
            "body": None,
            # the compute microversion the client asked for (Nova's headers), None if none
            "microversion": request.headers.get("X-OpenStack-Nova-API-Version")
            or request.headers.get("OpenStack-API-Version"),
        }
        self.entries.append(entry)
        return entry


@dataclass
class SimContext:
    world: World
    credentials: Credentials
    limits: RateLimits = field(default_factory=RateLimits)
    faults: FaultPlan = field(default_factory=FaultPlan)
    log: RequestLog = field(default_factory=RequestLog)
    tokens: dict[str, Token] = field(default_factory=dict)
    base_url: str = ""

    def issue_token(self, scope: str, project_id: str, lifetime: float = 86400.0) -> Token:
        token = Token(
            value="sim" + uuid.uuid4().hex + uuid.uuid4().hex,
            scope=scope,
            project_id=project_id,
            expires_at=self.world.clock.seconds() + lifetime,
        )
        self.tokens[token.value] = token
        return token

    def valid_token(self, value: str | None, scope: str) -> Token | None:
        token = self.tokens.get(value or "")
        if token is None or token.scope != scope:
            return None
        if token.expires_at <= self.world.clock.seconds():
            return None
        return token

    def token_expiry(self, token: Token) -> str:
        delta = token.expires_at - self.world.clock.seconds()
        when = self.world.clock.now() + timedelta(seconds=delta)
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}Z"


CTX: web.AppKey[SimContext] = web.AppKey("sim_context", SimContext)
ENTRY: web.RequestKey[dict[str, object]] = web.RequestKey("sim_entry", dict)
DROP: web.RequestKey[bool] = web.RequestKey("sim_drop", bool)
LOST: web.RequestKey[web.Response] = web.RequestKey("sim_lost_answer", web.Response)


def ctx_of(request: web.Request) -> SimContext:
    return request.app[CTX]


def request_id_of(request: web.Request) -> str:
    """The id the middleware sends as `X-Request-Id` (`X-Openstack-Request-Id` is `req-` + it);
    made here when a handler needs it first, e.g. to record an instance action."""
    entry = entry_of(request)
    rid = entry.get("request_id")
    if not isinstance(rid, str):
        rid = f"{int(str(entry['seq'])):08x}{uuid.uuid4().hex[:24]}"
        entry["request_id"] = rid
    return rid


def entry_of(request: web.Request) -> dict[str, object]:
    return request[ENTRY]


_ENCODE = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def json_response(data: object, *, status: int = 200) -> web.Response:
    """`web.json_response` with a compact encoder that skips the circular-reference check (the
    bodies are trees built per request): a 1,000-server listing encodes in 23 ms instead of 40 ms,
    which was most of the simulator's time per listing."""
    return web.Response(
        text=_ENCODE(data), status=status, content_type="application/json", charset="utf-8"
    )


def error_response(
    dialect: str, status: int, message: str, code: str | None = None
) -> web.Response:
    """An error in the dialect's documented shape (api-digest §5.1)."""
    body: dict[str, object]
    if dialect == HUAWEI:
        body = {"error": {"code": code or f"Common.{status:04d}", "message": message}}
    elif dialect == KEYSTONE:
        body = {
            "error": {"code": status, "message": message, "title": _TITLES.get(status, "Error")}
        }
    else:
        body = {_NOVA_NAMES.get(status, "computeFault"): {"code": status, "message": message}}
    return json_response(body, status=status)


def throttle_response(dialect: str, retry_after: float) -> web.Response:
    """The dialect's throttling answer: Huawei 429 `Common.1503`; OpenStack 429 + `Retry-After`."""
    if dialect in (HUAWEI, HUAWEI_NOVA):
        return json_response(
            {
                "error": {
                    "code": "Common.1503",
                    "message": "Api flow control Error because of too many requests.",
                }
            },
            status=429,
        )
    seconds = max(1, math.ceil(retry_after))
    resp = json_response(
        {"overLimit": {"code": 429, "message": "Rate limit exceeded.", "retryAfter": str(seconds)}},
        status=429,
    )
    resp.headers["Retry-After"] = str(seconds)
    return resp


async def read_json(request: web.Request, dialect: str) -> dict[str, object]:
    """The request body as a JSON object, or the dialect's 400."""
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise SimReply(
            error_response(dialect, 400, "request body is illegal.", "Ecs.0005")
        ) from None
    if not isinstance(data, dict):
        raise SimReply(error_response(dialect, 400, "request body is illegal.", "Ecs.0005"))
    entry_of(request)["body"] = redacted(data)
    return data


SECRET_FIELDS = frozenset({"adminPass", "password"})
"""Body fields the request log never shows (a create's admin password, Keystone's password):
`/_sim/requests` answers anyone who can reach the simulator."""


def redacted(value: object) -> object:
    """`value` (a JSON body) with every string under a `SECRET_FIELDS` key replaced by `***`."""
    if isinstance(value, dict):
        return {
            k: "***" if k in SECRET_FIELDS and isinstance(v, str) else redacted(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value


async def admit(
    request: web.Request,
    *,
    dialect: str,
    rate_key: str,
    servers: list[str] | tuple[str, ...] = (),
    action: str | None = None,
) -> None:
    """Log the call, apply faults and the rate limit of `rate_key`; raise SimReply to refuse it."""
    ctx = ctx_of(request)
    entry = entry_of(request)
    entry.update(dialect=dialect, rate_key=rate_key, server_ids=list(servers), action=action)
    slow = ctx.faults.take("latency", rate_key)
    if slow is not None:
        await asyncio.sleep((slow.ms + random.uniform(0, slow.jitter_ms)) / 1000.0)
    hang = ctx.faults.take("timeout", rate_key)
    if hang is not None:
        await asyncio.sleep(hang.seconds)
        request[DROP] = True
        raise SimReply(error_response(dialect, 504, "Gateway Timeout"))
    wait = ctx.limits.admit(rate_key, requests=1, servers=len(servers))
    if wait is not None:
        raise SimReply(throttle_response(dialect, wait))
    if ctx.faults.take("throttle", rate_key) is not None:
        raise SimReply(throttle_response(dialect, 1.0))
    burst = ctx.faults.take("error_burst", rate_key)
    if burst is not None:
        raise SimReply(
            error_response(dialect, burst.status, "A system exception occurred.", "Common.0001")
        )
    if ctx.faults.take("drop", rate_key) is not None:
        request[DROP] = True
    lost = ctx.faults.take("lost_answer", rate_key)
    if lost is not None:  # performed, but the caller gets this instead of the answer
        request[LOST] = error_response(dialect, lost.status, "Gateway Timeout", "Common.0001")
    # Admitted: whatever the handler now performs is this request's instance action.
    acting(Actor(request_id=f"req-{request_id_of(request)}", source=dialect))
