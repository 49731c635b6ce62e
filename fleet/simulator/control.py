"""The `/_sim` control plane: endpoints, request log, stats, servers, faults, limits, clock.

No authentication: the simulator listens on loopback and this is how tests and benchmarks look
inside it and steer it.
"""

from __future__ import annotations

import json

from aiohttp import web

from fleet.simulator.core import SimContext, ctx_of, json_response, request_id_of
from fleet.simulator.faults import FaultRule, parse_rule
from fleet.simulator.instance_actions import Actor, acting
from fleet.simulator.limits import Limit
from fleet.simulator.world import BMS, ECS, OPENSTACK, Server, iso
from fleet.simulator.worldgen import WorldSpec


def create_needs(ctx: SimContext) -> dict[str, dict[str, object]]:
    """Per dialect, ids a valid create may use (see `provision`): the first of each kind."""
    cat, world = ctx.world.catalog, ctx.world

    def flavor(kind: str) -> str:
        return next(f.id for f in world.flavors.values() if f.kind == kind)

    image = next(iter(cat.images), "")
    subnet = next(iter(cat.subnets), "")
    huawei = {"image": image, "network": subnet, "vpc": cat.subnets.get(subnet, "")}
    zone = cat.zones[0]
    return {
        "huawei": {
            "ecs": {**huawei, "flavor": flavor(ECS), "availability_zone": zone},
            "bms": {**huawei, "flavor": flavor(BMS), "availability_zone": zone},
        },
        "openstack": {
            "flavor": flavor(OPENSTACK),
            "image": image,
            "network": next(iter(cat.networks), ""),
            "availability_zone": zone,
        },
    }


def endpoints(ctx: SimContext) -> dict[str, dict[str, str]]:
    c, base = ctx.credentials, ctx.base_url
    return {
        "openstack": {
            "auth_url": f"{base}/identity/v3",
            "username": c.os_user,
            "password": c.os_password,
            "project_name": c.os_project,
            "user_domain_name": c.os_domain,
            "project_domain_name": c.os_domain,
            "region_name": c.os_region,
        },
        "huawei": {
            "iam_url": base,
            "ecs_url": base,
            "bms_url": base,
            "region": c.huawei_region,
            "project_id": ctx.world.huawei_project_id,
            "ak": c.huawei_ak,
            "sk": c.huawei_sk,
            "username": c.huawei_user,
            "password": c.huawei_password,
            "domain_name": c.huawei_domain,
        },
    }


def server_json(s: Server) -> dict[str, object]:
    return {
        "id": s.id,
        "name": s.name,
        "kind": s.kind,
        "project_id": s.project_id,
        "status": s.status,
        "task_state": s.task_state,
        "vm_state": s.vm_state,
        "flavor": s.flavor_id,
        "tags": dict(s.tags),
        "metadata": dict(s.metadata),
        "locked": s.locked,
        "deleted": iso(s.deleted_at) if s.deleted_at else None,
        "busy": s.busy,
    }


def _bad(message: str) -> web.Response:
    return json_response({"error": message}, status=400)


async def _body(request: web.Request) -> object:
    try:
        return await request.json()
    except (ValueError, json.JSONDecodeError):
        return None


async def get_endpoints(request: web.Request) -> web.Response:
    """The accounts per dialect, each with `create`: what a valid create may name."""
    ctx = ctx_of(request)
    needs = create_needs(ctx)
    body: dict[str, dict[str, object]] = {k: dict(v) for k, v in endpoints(ctx).items()}
    for dialect, need in needs.items():
        body[dialect]["create"] = need
    return json_response(body)


async def get_requests(request: web.Request) -> web.Response:
    """The request log; filters: `since` (seq), `rate_key`, `dialect`, `path_prefix`."""
    ctx = ctx_of(request)
    since = int(request.query.get("since", "0") or 0)
    rate_key = request.query.get("rate_key")
    dialect = request.query.get("dialect")
    prefix = request.query.get("path_prefix")
    out = [
        e
        for e in ctx.log.entries
        if int(str(e["seq"])) > since
        and e["dialect"] != "sim"
        and (rate_key is None or e["rate_key"] == rate_key)
        and (dialect is None or e["dialect"] == dialect)
        and (prefix is None or str(e["path"]).startswith(prefix))
    ]
    return json_response({"requests": out, "last_seq": ctx.log.seq})


async def delete_requests(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    ctx.log.entries.clear()
    ctx.limits.stats.clear()
    return json_response({"cleared": True})


async def get_stats(request: web.Request) -> web.Response:
    return json_response({"keys": ctx_of(request).limits.snapshot()})


async def get_servers(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    kind = request.query.get("kind")
    return json_response({"servers": [server_json(s) for s in ctx.world.visible(kind)]})


async def patch_server(request: web.Request) -> web.Response:
    """Change a server by hand (as a person in the console would): status, tags, locked.

    A status or lock change is an instance action of its own (`start`, `stop`, `lock`, `unlock`,
    with this call's request id); a status change ends any action in progress in Error. Tag
    changes are not instance actions, as in Nova.
    """
    ctx = ctx_of(request)
    server = ctx.world.servers.get(request.match_info["server_id"])
    if server is None:
        return json_response({"error": "no such server"}, status=404)
    body = await _body(request)
    if not isinstance(body, dict):
        return _bad("body must be a JSON object")
    status, tags = body.get("status"), body.get("tags", {})
    if status is not None and status not in ("ACTIVE", "SHUTOFF"):
        return _bad("status: must be ACTIVE or SHUTOFF")
    if not isinstance(tags, dict):
        return _bad("tags: must be an object of strings")
    acting(Actor(request_id=f"req-{request_id_of(request)}", source="console"))
    if status is not None:
        _set_status(ctx, server, str(status))
    if "tags" in body:
        server.tags = {str(k): str(v) for k, v in tags.items()}
    if "locked" in body and bool(body["locked"]) != server.locked:
        server.locked = bool(body["locked"])
        ctx.world.record(server, "lock" if server.locked else "unlock", finished=True)
    server.updated = ctx.world.clock.now()
    return json_response(server_json(server))


def _set_status(ctx: SimContext, server: Server, status: str) -> None:
    """Settle `server` in `status` at once, recording `start`/`stop` if that changes it."""
    changed = (server.power_state == 1) != (status == "ACTIVE")  # powered on or off
    ctx.world.interrupt(server, f"Interrupted: set to {status} in the console.")
    server.status, server.vm_state, server.power_state = (
        ("ACTIVE", "active", 1) if status == "ACTIVE" else ("SHUTOFF", "stopped", 4)
    )
    if changed:
        ctx.world.record(server, "start" if status == "ACTIVE" else "stop", finished=True)


async def get_faults(request: web.Request) -> web.Response:
    return json_response({"faults": [r.to_json() for r in ctx_of(request).faults.rules]})


async def post_faults(request: web.Request) -> web.Response:
    """Add one fault (`{"kind": ...}`) or several (`{"faults": [...]}`); 400 names the field."""
    ctx = ctx_of(request)
    body = await _body(request)
    items = body.get("faults") if isinstance(body, dict) and "faults" in body else [body]
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return _bad('body must be a fault object or {"faults": [...]}')
    try:
        rules = [parse_rule(i) for i in items]
    except ValueError as exc:
        return _bad(str(exc))
    for rule in rules:
        _install(ctx, rule)
    return json_response({"faults": [r.to_json() for r in ctx.faults.rules]}, status=201)


def _install(ctx: SimContext, rule: FaultRule) -> None:
    if rule.kind == "job_fail":
        for sid in rule.server_ids:
            ctx.world.failing[sid] = (rule.error_code, rule.reason)
    else:
        ctx.faults.add(rule)


async def delete_faults(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    ctx.faults.clear()
    ctx.world.failing.clear()
    return json_response({"faults": []})


async def get_limits(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return json_response(
        {
            k: {"limit": v.limit, "period": v.period, "unit": v.unit}
            for k, v in ctx.limits.limits.items()
        }
    )


async def post_limits(request: web.Request) -> web.Response:
    """`{"rate-key": {"limit": 50, "period": 5, "unit": "requests"} | null, ...}`."""
    ctx = ctx_of(request)
    body = await _body(request)
    if not isinstance(body, dict):
        return _bad("body must be an object of rate keys")
    try:
        parsed = {str(k): _limit(str(k), v) for k, v in body.items()}
    except ValueError as exc:
        return _bad(str(exc))
    for key, limit in parsed.items():
        ctx.limits.set(key, limit)
    return await get_limits(request)


def _limit(key: str, value: object) -> Limit | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{key}: must be an object or null")
    try:
        return Limit(
            int(value["limit"]), float(value["period"]), str(value.get("unit", "requests"))
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{key}: needs limit (int >= 1), period (seconds > 0), unit: {exc}"
        ) from None


async def post_clock(request: web.Request) -> web.Response:
    """`{"advance": seconds}` moves simulated time forward (transitions settle sooner)."""
    ctx = ctx_of(request)
    body = await _body(request)
    seconds = body.get("advance") if isinstance(body, dict) else None
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        return _bad("advance: must be a non-negative number of seconds")
    ctx.world.clock.advance(float(seconds))
    ctx.world.settle()
    return json_response({"now": iso(ctx.world.clock.now()), "speed": ctx.world.clock.speed})


def apply_spec_limits_and_faults(ctx: SimContext, spec: WorldSpec) -> None:
    for key, value in spec.limits.items():
        ctx.limits.set(key, _limit(key, value))
    for item in spec.faults:
        _install(ctx, parse_rule(item))


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/_sim/endpoints", get_endpoints)
    r.add_get("/_sim/requests", get_requests)
    r.add_delete("/_sim/requests", delete_requests)
    r.add_get("/_sim/stats", get_stats)
    r.add_get("/_sim/servers", get_servers)
    r.add_patch("/_sim/servers/{server_id}", patch_server)
    r.add_get("/_sim/faults", get_faults)
    r.add_post("/_sim/faults", post_faults)
    r.add_delete("/_sim/faults", delete_faults)
    r.add_get("/_sim/limits", get_limits)
    r.add_post("/_sim/limits", post_limits)
    r.add_post("/_sim/clock", post_clock)
