"""Huawei BMS v1: batch start/stop/reboot and batch delete returning a job, the server lists and show.

The seeds give the BMS v1 URIs and their per-minute limits (seed 000 Table 2) but no bodies
(digest A-3), so the shapes follow the official SDK's models (huaweicloudsdkbms v1):
- `POST /v1/{project_id}/baremetalservers/action` with `{"os-start": {"servers": [{"id"}]}}`,
  `{"os-stop": {"type", "servers"}}` or `{"reboot": {"type", "servers"}}`; `type` is SOFT or HARD
  and defaults to HARD (the SDK: "SOFT ... HARD: forced (default)"); answer `{"job_id"}`, polled
  at the shared `GET /v1/{project_id}/jobs/{job_id}` (see `huawei_jobs`).
- `GET /v1/{project_id}/baremetalservers/detail` with `flavor`, `name` (substring), `status`,
  `tags`, `limit` (default 25, at most 1000) and `offset` = the PAGE NUMBER starting at 1; with an
  `offset`, `limit` defaults to 1000; `detail` (the level of detail, 1-4) is accepted and
  does not change the answer. The answer is `{"servers": [...], "count": n}` where `count` is
  the number of servers that match, over all pages: ListBareMetalServersResponse documents it
  as the list's total ("裸金属服务器的列表总数"); the request's `offset` text ("总条数最大值为
  limit") reads as if it were capped by `limit`, which would make it the page size and leave a
  client no way to know when to stop: the response model is followed. `tags` is a
  comma-separated list of `key` or `key=value`; `__type_baremetal` (the system tag every BMS
  has) matches every BMS.
- `GET /v1.1/{project_id}/baremetalservers/detail` (ListBareMetalServersDetail) takes the same
  `flavor`, `name`, `status`, `limit`, `offset` and `detail` (no `tags`) and answers
  `{"servers": [...]}` (no `count` in its model; a `tags` parameter is ignored) of the SDK's shorter `ServerListDetails`: id,
  user_id, name, created, updated, tenant_id, `flavor` {id, name, disk, vcpus, ram as numbers,
  gpus, asic_accelerators}, status, task_state, vm_state, availability_zone, `fault` (when there
  is one) and `in_recycle_bin` (always false: the simulated BMS has no recycle bin).
- `GET /v1/{project_id}/baremetalservers/{server_id}` answers `{"server": {...}}`.
- `POST /v1/{project_id}/baremetalservers/delete` (DeleteBaremetalServer, `DeleteBaremetalBody`)
  with `{"servers": [{"id"}], "delete_publicip": bool, "delete_volume": bool}` answers
  `{"job_id"}`; batch checks are the shared ones of `huawei_jobs`, and a deleted BMS keeps its
  status with task `deleting`, then is gone from every list (ECS's delete, digest Table A-4).
  Seed 000 lists no BMS delete: the URI and bodies are the SDK's.
Flavors and tags have modules of their own (`huawei_bms_flavors`, `huawei_bms_tags`).
Server documents use the SDK's `ServerDetails` field names (Nova-style `OS-EXT-STS:*` etc.);
`tags` lists `key=value` strings (a bare key for an empty value) plus `__type_baremetal`.

Errors: the BMS error codes are in neither the seeds nor the SDK, so the simulator answers with
the ECS codes of the same meaning (unknown id `Ecs.0114` 404, locked `Ecs.0605`, busy `Ecs.0603`,
bad body `Ecs.0005`) in the `{"error": {"code", "message"}}` shape seed 003 documents for BMS.
Status changes are ECS's (Table A-4): stop ACTIVE + `powering-off` -> SHUTOFF, start SHUTOFF +
`powering-on` -> ACTIVE, reboot REBOOT + `reboot_started` (HARD: HARD_REBOOT +
`reboot_started_hard`) -> ACTIVE; a BMS not in the needed status gets a FAILed sub-job (`Ecs.0100`).
Rate keys: `huawei-bms:action` (50/min), `huawei-bms:detail` (500/min), `huawei-bms:show`
(1,000/min), `huawei-bms:jobs` (2,000/min), and, not in Table 2 so not limited by default,
`huawei-bms:detail-v1.1` and `huawei-bms:delete`.
"""

from __future__ import annotations

from aiohttp import web

from fleet.simulator import huawei_bms_flavors, huawei_bms_tags, huawei_iam, huawei_jobs
from fleet.simulator.core import HUAWEI, SimContext, admit, ctx_of, json_response, read_json
from fleet.simulator.huawei_bms_tags import SYSTEM_TAG
from fleet.simulator.huawei_jobs import Action, reply
from fleet.simulator.server_table import page_of
from fleet.simulator.world import BMS, RUNNING, STOPPED, Server, iso

DELETE = Action(
    "delete", None, None, "deleting", ("DELETED", "deleted", 0), "deleteBaremetalServers"
)

START = Action("start", ("SHUTOFF",), None, "powering-on", RUNNING, "batchStartBaremetalServers")
_STOPS = {
    "SOFT": Action("stop", ("ACTIVE",), None, "powering-off", STOPPED, "batchStopBaremetalServers"),
    "HARD": Action(
        "stop_hard", ("ACTIVE",), None, "powering-off", STOPPED, "batchStopBaremetalServers"
    ),
}
_REBOOTS = {
    "SOFT": Action(
        "reboot", ("ACTIVE",), "REBOOT", "reboot_started", RUNNING, "batchRebootBaremetalServers"
    ),
    "HARD": Action(
        "reboot_hard",
        ("ACTIVE",),
        "HARD_REBOOT",
        "reboot_started_hard",
        RUNNING,
        "batchRebootBaremetalServers",
    ),
}


def _choose(key: str, op: dict[str, object]) -> Action:
    if key == "os-start":
        return START
    table = _STOPS if key == "os-stop" else _REBOOTS
    kind = op.get("type", "HARD")
    if not isinstance(kind, str) or kind not in table:
        raise reply("Ecs.0005", f"{key}.type must be SOFT or HARD")
    return table[kind]


async def post_action(request: web.Request) -> web.Response:
    """`POST /v1/{project_id}/baremetalservers/action`: batch start, stop or reboot."""
    return await huawei_jobs.batch_action(
        request, kind=BMS, rate_key="huawei-bms:action", choose=_choose
    )


def one_d_tags(server: Server) -> list[str]:
    """2D tags as the 1D strings BMS and Nova bodies use (`key=value`, or `key` alone)."""
    return [f"{k}={v}" if v else k for k, v in server.tags.items()] + [SYSTEM_TAG]


def server_details(ctx: SimContext, s: Server) -> dict[str, object]:
    """One BMS in the SDK's `ServerDetails` shape."""
    flavor = ctx.world.flavors[s.flavor_id]
    body: dict[str, object] = {
        "id": s.id,
        "name": s.name,
        "user_id": huawei_iam.user_id(ctx),
        "tenant_id": s.project_id,
        "created": iso(s.created),
        "updated": iso(s.updated),
        "hostId": s.id.replace("-", "")[:24],
        "addresses": {},
        "key_name": "",
        "image": {"id": s.image_id},
        "flavor": {
            "id": flavor.id,
            "name": flavor.name,
            "vcpus": str(flavor.vcpus),
            "ram": str(flavor.ram),
            "disk": str(flavor.disk),
        },
        "security_groups": [],
        "accessIPv4": "",
        "accessIPv6": "",
        "status": s.status,
        "progress": 0,
        "config_drive": "",
        "metadata": {"op_svc_userid": huawei_iam.user_id(ctx), "chargingMode": "0"},
        "OS-EXT-STS:task_state": s.task_state,
        "OS-EXT-STS:vm_state": s.vm_state,
        "OS-EXT-STS:power_state": s.power_state,
        "OS-EXT-SRV-ATTR:host": f"bms.{s.availability_zone}",
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{s.id[:8]}",
        "OS-EXT-SRV-ATTR:hypervisor_hostname": f"bms-node-{s.id[:8]}",
        "OS-EXT-SRV-ATTR:hostname": s.name,
        "OS-EXT-AZ:availability_zone": s.availability_zone,
        "OS-DCF:diskConfig": "MANUAL",
        "OS-SRV-USG:launched_at": iso(s.created),
        "OS-SRV-USG:terminated_at": "",
        "os-extended-volumes:volumes_attached": [],
        "description": "",
        "host_status": "UP",
        "locked": s.locked,
        "tags": one_d_tags(s),
        "enterprise_project_id": "0",
        "sys_tags": [{"key": "_sys_enterprise_project_id", "value": "0"}],
    }
    if s.fault is not None:
        body["fault"] = dict(s.fault)
    return body


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or not raw.isascii():
        raise reply("Ecs.0005", f"{name} must be a non-negative integer")
    return int(raw)


def _page_bounds(request: web.Request) -> tuple[int, int]:
    """(start, size): `offset` is a 1-based page number (SDK ListBareMetalServersRequest)."""
    detail = request.query.get("detail")
    if detail is not None and detail not in ("1", "2", "3", "4"):
        raise reply("Ecs.0005", "detail must be 1, 2, 3 or 4")
    limit, offset = _int_param(request, "limit"), _int_param(request, "offset")
    if limit is not None and not 1 <= limit <= 1000:
        raise reply("Ecs.0005", "limit must be between 1 and 1000")
    if offset is None:
        return 0, limit or 25
    if offset < 1:
        raise reply("Ecs.0005", "offset is a page number starting at 1")
    size = limit or 1000
    return (offset - 1) * size, size


def _wanted(s: Server, request: web.Request, by_tags: bool) -> bool:
    q = request.query
    if "flavor" in q and s.flavor_id != q["flavor"]:
        return False
    if "name" in q and q["name"] not in s.name:
        return False
    if "status" in q and s.status != q["status"]:
        return False
    wanted = [t for t in q.get("tags", "").split(",") if t] if by_tags else []
    return all(t in one_d_tags(s) for t in wanted)


async def _matches(
    request: web.Request, rate_key: str, *, by_tags: bool = True
) -> tuple[list[Server], int]:
    """Authenticate and admit a listing; (the page of matching BMSs, how many match)."""
    ctx = ctx_of(request)
    project_id = request.match_info["project_id"]
    await huawei_iam.authenticate(request, project_id)
    await admit(request, dialect=HUAWEI, rate_key=rate_key, action="list")
    start, size = _page_bounds(request)
    q = request.query
    unfiltered = not any(k in q for k in ("flavor", "name", "status")) and not (
        by_tags and any(t for t in q.get("tags", "").split(","))
    )
    return page_of(
        ctx.world.live_in_order(BMS, project_id),
        None if unfiltered else lambda s: _wanted(s, request, by_tags),
        start,
        size,
        newest_first=False,
    )


async def get_detail(request: web.Request) -> web.Response:
    """`GET /v1/{project_id}/baremetalservers/detail`: filtered, paged by page number."""
    ctx = ctx_of(request)
    hits, count = await _matches(request, "huawei-bms:detail")
    return json_response({"servers": [server_details(ctx, s) for s in hits], "count": count})


def server_list_details(ctx: SimContext, s: Server) -> dict[str, object]:
    """One BMS in the SDK's `ServerListDetails` shape (the v1.1 list)."""
    flavor = ctx.world.flavors[s.flavor_id]
    body: dict[str, object] = {
        "id": s.id,
        "user_id": huawei_iam.user_id(ctx),
        "name": s.name,
        "created": iso(s.created),
        "updated": iso(s.updated),
        "tenant_id": s.project_id,
        "flavor": {
            "id": flavor.id,
            "name": flavor.name,
            "disk": flavor.disk,
            "vcpus": flavor.vcpus,
            "ram": flavor.ram,
            "gpus": [],
            "asic_accelerators": [],
        },
        "status": s.status,
        "task_state": s.task_state,
        "vm_state": s.vm_state,
        "availability_zone": s.availability_zone,
        "in_recycle_bin": False,
    }
    if s.fault is not None:
        body["fault"] = dict(s.fault)
    return body


async def get_detail_v11(request: web.Request) -> web.Response:
    """`GET /v1.1/{project_id}/baremetalservers/detail`: the shorter list, no `tags` filter."""
    ctx = ctx_of(request)
    hits, _ = await _matches(request, "huawei-bms:detail-v1.1", by_tags=False)
    return json_response({"servers": [server_list_details(ctx, s) for s in hits]})


async def post_delete(request: web.Request) -> web.Response:
    """`POST /v1/{project_id}/baremetalservers/delete`: batch delete, answered with a job."""
    ctx = ctx_of(request)
    project_id = request.match_info["project_id"]
    await huawei_iam.authenticate(request, project_id)
    data = await read_json(request, HUAWEI)
    logged = huawei_jobs.loose_ids(data, "servers")
    await admit(
        request, dialect=HUAWEI, rate_key="huawei-bms:delete", servers=logged, action="delete"
    )
    for flag in ("delete_publicip", "delete_volume"):
        if not isinstance(data.get(flag, False), bool):
            raise reply("Ecs.0005", f"{flag} must be a boolean")
    servers = huawei_jobs.check_batch(ctx.world, huawei_jobs.server_ids(data), BMS, project_id)
    job = huawei_jobs.start_job(ctx.world, servers, DELETE, BMS, project_id)
    return json_response({"job_id": job.id})


async def get_server(request: web.Request) -> web.Response:
    """`GET /v1/{project_id}/baremetalservers/{server_id}` -> `{"server": {...}}`."""
    ctx = ctx_of(request)
    project_id, server_id = request.match_info["project_id"], request.match_info["server_id"]
    await huawei_iam.authenticate(request, project_id)
    await admit(
        request, dialect=HUAWEI, rate_key="huawei-bms:show", servers=[server_id], action="show"
    )
    server = huawei_jobs.find(ctx.world, server_id, BMS, project_id)
    if server is None:
        raise reply("Ecs.0114")
    return json_response({"server": server_details(ctx, server)})


def setup(app: web.Application) -> None:
    """Register the BMS routes (the job route is shared with ECS, see `huawei_jobs`). Fixed
    paths come before `/baremetalservers/{server_id}`, which would otherwise capture them."""
    r = app.router
    r.add_post("/v1/{project_id}/baremetalservers/action", post_action)
    r.add_post("/v1/{project_id}/baremetalservers/delete", post_delete)
    r.add_get("/v1/{project_id}/baremetalservers/detail", get_detail)
    r.add_get("/v1.1/{project_id}/baremetalservers/detail", get_detail_v11)
    huawei_bms_flavors.setup(app)
    huawei_bms_tags.setup(app)
    r.add_get("/v1/{project_id}/baremetalservers/{server_id}", get_server)
