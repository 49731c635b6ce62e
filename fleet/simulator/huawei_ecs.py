"""Huawei ECS v1: batch start/stop/reboot, resize and batch delete, each answered with a job.

Bodies are exactly digest §3.1's: `{"os-start": {"servers": [{"id"}]}}`,
`{"os-stop": {"type": "SOFT"|"HARD" (default SOFT), "servers": [...]}}`,
`{"reboot": {"type": "SOFT"|"HARD" (required), "servers": [...]}}`, resize
`{"resize": {"flavorRef"}, "dry_run": bool}` and delete
`{"servers": [...], "delete_publicip": bool, "delete_volume": bool}`. Anything else is 400
`Ecs.0005`; more than 1,000 servers is `Ecs.0118`. Batch checks, sub-job outcomes and the job
document are described in `huawei_jobs`.

Status changes follow Table A-4: stop shows ACTIVE + `powering-off` then SHUTOFF; start shows
SHUTOFF + `powering-on` then ACTIVE; reboot shows REBOOT + `rebooting` (HARD: HARD_REBOOT +
`rebooting_hard`) then ACTIVE; resize, allowed only on a SHUTOFF server ("only when the ECS is
stopped"), shows RESIZE + `resize_prep` then SHUTOFF with the new flavor (the v1 API has no
confirm step); delete keeps the status with task `deleting`, then the server is DELETED and gone
from every list. A resize with `dry_run: true` runs every check and answers 202 with no body.

The SDK's main resize, `POST /v1.1/{project_id}/cloudservers/{server_id}/resize` (huaweicloudsdkecs
`ResizeServerRequestBody`: `resize` = `ResizePrePaidServerOption` {`flavorRef`,
`dedicated_host_id`, `extendparam` {`isAutoPay`}, `mode`, `cpu_options`}, and `dry_run`), is the
same call with the same checks, answers and job; the SDK adds `mode: "withStopServer"`, which
"changes the flavor of a running ECS: the system stops it, changes the flavor, then starts it
again", so with that mode an ACTIVE ECS is accepted and ends ACTIVE with the new flavor (shown
as RESIZE + `resize_prep` meanwhile). The answer is `{"job_id"}` (an on-demand ECS: the SDK's
`order_id` is for yearly/monthly ones, which the simulator does not model).

The rate keys (configurable in `limits`): `huawei-ecs:action` counts servers (1,000 per minute by
default, seed 001 §5.3), `huawei-ecs:resize` (v1 and v1.1) and `huawei-ecs:delete` count requests.
The reads are in `huawei_ecs_query` (list, show) and `huawei_ecs_catalog` (flavors, quotas).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from fleet.simulator import (
    huawei_ecs_catalog,
    huawei_ecs_query,
    huawei_iam,
    huawei_jobs,
    huawei_tags,
    huawei_tms,
)
from fleet.simulator.core import HUAWEI, admit, ctx_of, json_response, read_json
from fleet.simulator.huawei_jobs import Action, reply
from fleet.simulator.world import ECS, RUNNING, STOPPED, SubJob

START = Action("start", ("SHUTOFF",), None, "powering-on", RUNNING, "batchStartServers")
STOP = Action("stop", ("ACTIVE",), None, "powering-off", STOPPED, "batchStopServers")
STOP_HARD = Action("stop_hard", ("ACTIVE",), None, "powering-off", STOPPED, "batchStopServers")
REBOOT = Action("reboot", ("ACTIVE",), "REBOOT", "rebooting", RUNNING, "batchRebootServers")
REBOOT_HARD = Action(
    "reboot_hard", ("ACTIVE",), "HARD_REBOOT", "rebooting_hard", RUNNING, "batchRebootServers"
)
DELETE = Action("delete", None, None, "deleting", ("DELETED", "deleted", 0), "deleteServers")


def _choose(key: str, op: dict[str, object]) -> Action:
    """The action of one batch body, validating its `type`."""
    kind = op.get("type")
    if key == "os-start":
        return START
    if key == "os-stop":
        if kind is None or kind == "SOFT":
            return STOP
        if kind == "HARD":
            return STOP_HARD
        raise reply("Ecs.0005", "os-stop.type must be SOFT or HARD")
    if kind == "SOFT":
        return REBOOT
    if kind == "HARD":
        return REBOOT_HARD
    raise reply("Ecs.0005", "reboot.type is required: SOFT or HARD")


async def post_action(request: web.Request) -> web.Response:
    """`POST /v1/{project_id}/cloudservers/action`: batch start, stop or reboot."""
    return await huawei_jobs.batch_action(
        request, kind=ECS, rate_key="huawei-ecs:action", choose=_choose
    )


@dataclass(frozen=True)
class ResizeSpec:
    flavor_id: str
    dry_run: bool
    with_stop: bool  # v1.1 `mode: withStopServer`: a running ECS is resized and started again


def _resize_target(data: dict[str, object], *, v11: bool) -> ResizeSpec:
    spec = data.get("resize")
    if not isinstance(spec, dict):
        raise reply("Ecs.0005", "resize is required: {flavorRef}")
    flavor = spec.get("flavorRef")
    if not isinstance(flavor, str) or not flavor:
        raise reply("Ecs.0005", "resize.flavorRef is required")
    dry_run = data.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise reply("Ecs.0005", "dry_run must be a boolean")
    mode = spec.get("mode") if v11 else None
    if mode not in (None, "withStopServer"):
        raise reply("Ecs.0005", "resize.mode must be withStopServer")
    if v11 and not isinstance(spec.get("extendparam", {}), dict):
        raise reply("Ecs.0005", "resize.extendparam must be an object")
    return ResizeSpec(flavor, dry_run, mode == "withStopServer")


async def post_resize(request: web.Request) -> web.Response:
    """`POST /v1/{project_id}/cloudservers/{server_id}/resize` (stopped servers only)."""
    return await _resize(request, v11=False)


async def post_resize_v11(request: web.Request) -> web.Response:
    """`POST /v1.1/{project_id}/cloudservers/{server_id}/resize` (the SDK's `resize_server`)."""
    return await _resize(request, v11=True)


async def _resize(request: web.Request, *, v11: bool) -> web.Response:
    ctx = ctx_of(request)
    world = ctx.world
    project_id, server_id = request.match_info["project_id"], request.match_info["server_id"]
    await huawei_iam.authenticate(request, project_id)
    data = await read_json(request, HUAWEI)
    await admit(
        request, dialect=HUAWEI, rate_key="huawei-ecs:resize", servers=[server_id], action="resize"
    )
    target = _resize_target(data, v11=v11)
    server = huawei_jobs.find(world, server_id, ECS, project_id)
    code = huawei_jobs.problem(server)
    if code is not None or server is None:
        raise reply(code or "Ecs.0114")
    flavor = world.flavors.get(target.flavor_id)
    if flavor is None or flavor.kind != ECS:
        raise reply("Ecs.0029")
    if target.flavor_id == server.flavor_id:
        raise reply("Ecs.0810")
    running = target.with_stop and server.status == "ACTIVE"
    if server.status != "SHUTOFF" and not running:
        raise reply("Ecs.0100", f"the ECS must be stopped (status is {server.status})")
    if target.dry_run:
        return web.Response(status=202)
    t = world.begin(
        server,
        "resize",
        interim=("RESIZE", "resize_prep"),
        end=RUNNING if running else STOPPED,
        flavor_id=target.flavor_id,
    )
    part = SubJob(huawei_jobs.hex_id(), server.id, t.done_at, t.fail)
    job = world.new_job("resizeServer", ECS, project_id, [part])
    return json_response({"job_id": job.id})


async def post_delete(request: web.Request) -> web.Response:
    """`POST /v1/{project_id}/cloudservers/delete`: batch delete (at most 1,000 servers)."""
    ctx = ctx_of(request)
    project_id = request.match_info["project_id"]
    await huawei_iam.authenticate(request, project_id)
    data = await read_json(request, HUAWEI)
    logged = huawei_jobs.loose_ids(data, "servers")
    await admit(
        request, dialect=HUAWEI, rate_key="huawei-ecs:delete", servers=logged, action="delete"
    )
    for flag in ("delete_publicip", "delete_volume"):
        if not isinstance(data.get(flag, False), bool):
            raise reply("Ecs.0005", f"{flag} must be a boolean")
    ids = huawei_jobs.server_ids(data)
    servers = huawei_jobs.check_batch(ctx.world, ids, ECS, project_id)
    job = huawei_jobs.start_job(ctx.world, servers, DELETE, ECS, project_id)
    return json_response({"job_id": job.id})


def setup(app: web.Application) -> None:
    """Register the ECS v1 routes, the 2D tag routes, the job route shared with BMS and TMS.

    Order matters: aiohttp tries routes in registration order, so every fixed
    `cloudservers/<name>` route (detail, tags, ...) comes before `cloudservers/{server_id}`.
    """
    r = app.router
    r.add_post("/v1/{project_id}/cloudservers/action", post_action)
    r.add_post("/v1/{project_id}/cloudservers/delete", post_delete)
    r.add_post("/v1/{project_id}/cloudservers/{server_id}/resize", post_resize)
    r.add_post("/v1.1/{project_id}/cloudservers/{server_id}/resize", post_resize_v11)
    huawei_ecs_query.setup_list(app)
    huawei_ecs_catalog.setup(app)
    huawei_tags.setup(app)
    huawei_ecs_query.setup_show(app)
    huawei_jobs.setup(app)
    huawei_tms.setup(app)
