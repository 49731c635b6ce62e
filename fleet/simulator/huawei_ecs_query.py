"""Huawei ECS v1 reads: the server list with details (`list_servers_details`) and one server.

The seeds document neither call (digest §2.1, "Important gap"): seed 001 has only the data
structures of "8.2 Data Structure for Querying Details About ECSs" (Tables 8-13 to 8-19: address,
flavor, security_groups, volumes_attached with `bootIndex`/`device`, metadata, sys_tags, image).
Everything else here comes from the official SDK's models (huaweicloudsdkecs v2):
- `GET /v1/{project_id}/cloudservers/detail` (`ListServersDetailsRequest`): `limit` (page size,
  default 25, at most 1000), `offset` (the PAGE NUMBER, default 1; 0 means 1), `marker` (the id of
  the last server of the previous page; it replaces `offset`), `name` ("fuzzy match": a
  case-sensitive substring), `status` (one of the values the model lists), `flavor` (flavor id),
  `tags` / `not-tags` ("servers whose tags field contains / does not contain this value"),
  `ip` (fuzzy) / `ip_eq` (exact), `reservation_id`, `enterprise_project_id` (`0` or
  `all_granted_eps` select every server here) and `server_id` (comma-separated ids; when given,
  every other filter is ignored, and an unknown id answers an entry with only `id` and `fault`,
  as the model describes).
  The answer is `ListServersDetailsResponse`: `{"count": <total matches>, "servers": [...]}`
  (`count` is "the total of the list", not the page size).
- `GET /v1/{project_id}/cloudservers/{server_id}` (`ShowServerResponse`): `{"server": {...}}`.
Server documents use the SDK's `ServerDetail` field names; `tags` lists the 2D tags as
`"key=value"` strings (a bare `"key"` for an empty value), as the Nova surface shows them (digest
Appendix D item 6), without the reserved `__type_virtual` tag (a Nova-surface tag, T6-223).
Simulator choices where neither source says: `tags`/`not-tags` take a comma-separated list like
Nova's filters (`tags`: all present; `not-tags`: not all present), an item `key` matches the key
with any value and `key=value` matches exactly; only ECSs are listed (BMSs have their own API);
the list is newest first (reverse creation order) like Nova's; servers have no addresses in the
simulated world, so the `ip` filters match nothing; status `DELETED` matches nothing (only administrators may list
deleted servers).

Errors: an unknown, deleted or other-project id on show is 404 `Ecs.0114` "The ECS does not
exist."; a bad filter value is 400 `Ecs.0005` naming the parameter (seed 001 A.2: "Invalid
parameter values"), both in the `{"error": {"code", "message"}}` shape (digest §5.1).
Rate keys (no ECS limits are documented: unlimited unless set): `huawei-ecs:detail` (list),
`huawei-ecs:show` (one server).
"""

from __future__ import annotations

import functools
import itertools
import uuid
from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from fleet.simulator import huawei_iam, huawei_jobs
from fleet.simulator.core import HUAWEI, SimContext, SimReply, admit, ctx_of, json_response
from fleet.simulator.server_table import page_of
from fleet.simulator.world import ECS, Server, iso

# `ListServersDetailsRequest.status`: "ACTIVE, BUILD, DELETED, ERROR, HARD_REBOOT, MIGRATING,
# REBOOT, RESIZE, REVERT_RESIZE, SHELVED, SHELVED_OFFLOADED, SHUTOFF, UNKNOWN, VERIFY_RESIZE".
STATUSES = frozenset(
    [
        "ACTIVE",
        "BUILD",
        "DELETED",
        "ERROR",
        "HARD_REBOOT",
        "MIGRATING",
        "REBOOT",
        "RESIZE",
        "REVERT_RESIZE",
        "SHELVED",
        "SHELVED_OFFLOADED",
        "SHUTOFF",
        "UNKNOWN",
        "VERIFY_RESIZE",
    ]
)
DEFAULT_LIMIT, MAX_LIMIT = 25, 1000
ENTERPRISE_PROJECT = "0"  # the default enterprise project every simulated ECS belongs to
_ALL_PROJECTS = (ENTERPRISE_PROJECT, "all_granted_eps")


def bad_parameter(detail: str) -> SimReply:
    """400 `Ecs.0005` for a bad query parameter, naming it."""
    body = {"error": {"code": "Ecs.0005", "message": f"Invalid parameter values: {detail}"}}
    return SimReply(json_response(body, status=400))


def one_d_tags(server: Server) -> list[str]:
    return [k if v == "" else f"{k}={v}" for k, v in server.tags.items()]


@functools.lru_cache(maxsize=65536)
def _stable(*parts: str) -> str:
    """A stable id for what the world does not model (a volume, a VPC): cached, since a listing
    of 1,000 servers would otherwise spend half its time hashing them."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


@functools.lru_cache(maxsize=65536)
def _launched(dt: datetime) -> str:
    """`OS-SRV-USG:launched_at`, e.g. `2019-05-22T03:23:59.000000` (the SDK model's example)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")


def _metadata(ctx: SimContext, s: Server) -> dict[str, str]:
    """Table 8-17's system fields (all strings, as `dict(str, str)` in the SDK)."""
    return {
        "charging_mode": "0",
        "vpc_id": _stable("vpc", s.project_id),
        "metering.image_id": s.image_id,
        "metering.imagetype": "gold",
        "metering.resourcespeccode": s.flavor_id,
        "metering.resourcetype": "1",
        "image_name": "EulerOS 2.5 64bit",
        "os_bit": "64",
        "os_type": "Linux",
        "op_svc_userid": huawei_iam.user_id(ctx),
    }


def server_detail(ctx: SimContext, s: Server) -> dict[str, object]:
    """One ECS in the SDK's `ServerDetail` shape."""
    flavor = ctx.world.flavors[s.flavor_id]
    body: dict[str, object] = {
        "id": s.id,
        "name": s.name,
        "status": s.status,
        "updated": iso(s.updated),
        "created": iso(s.created),
        "user_id": huawei_iam.user_id(ctx),
        "tenant_id": s.project_id,
        "hostId": s.id.replace("-", "")[:24],
        "OS-EXT-SRV-ATTR:host": f"ecs.{s.availability_zone}",
        "addresses": {},
        "key_name": "",
        "image": {"id": s.image_id},
        "OS-EXT-STS:task_state": s.task_state,
        "OS-EXT-STS:vm_state": s.vm_state,
        "OS-EXT-STS:power_state": s.power_state,
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{s.id[:8]}",
        "OS-EXT-SRV-ATTR:hypervisor_hostname": f"nova-compute-{s.id[:8]}",
        "flavor": {
            "id": flavor.id,
            "name": flavor.name,
            "disk": "0",  # Table 8-14: "The field is invalid in this system."
            "vcpus": str(flavor.vcpus),
            "ram": str(flavor.ram),
        },
        "security_groups": [{"name": "default", "id": _stable("sg", s.project_id)}],
        "OS-EXT-AZ:availability_zone": s.availability_zone,
        "OS-DCF:diskConfig": "MANUAL",
        "accessIPv4": "",
        "accessIPv6": "",
        "progress": 0,
        "config_drive": "",
        "metadata": _metadata(ctx, s),
        "OS-SRV-USG:launched_at": _launched(s.created),
        "OS-SRV-USG:terminated_at": "",
        "os-extended-volumes:volumes_attached": [
            {
                "id": _stable("volume", s.id),
                "delete_on_termination": "true",
                "bootIndex": "0",
                "device": "/dev/vda",
            }
        ],
        "description": "",
        "host_status": "UP",
        "OS-EXT-SRV-ATTR:hostname": s.name,
        "OS-EXT-SRV-ATTR:reservation_id": f"r-{s.id[:8]}",
        "OS-EXT-SRV-ATTR:launch_index": 0,
        "OS-EXT-SRV-ATTR:kernel_id": "",
        "OS-EXT-SRV-ATTR:ramdisk_id": "",
        "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
        "OS-EXT-SRV-ATTR:user_data": "",
        "locked": s.locked,
        "tags": one_d_tags(s),
        "os:scheduler_hints": {},
        "enterprise_project_id": ENTERPRISE_PROJECT,
        "sys_tags": [{"key": "_sys_enterprise_project_id", "value": ENTERPRISE_PROJECT}],
    }
    if s.fault is not None:
        body["fault"] = dict(s.fault)
    return body


def _int(request: web.Request, name: str, low: int, high: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit():
        raise bad_parameter(f"{name} must be an integer")
    value = int(raw)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise bad_parameter(f"{name} must be {bound}")
    return value


def _items(raw: str) -> list[str]:
    return [t for t in raw.split(",") if t]


def _has(tags: list[str], item: str) -> bool:
    if "=" in item:
        return item in tags
    return any(t.partition("=")[0] == item for t in tags)


def _check_filters(request: web.Request) -> None:
    """Refuse a filter value the SDK's model does not allow."""
    q = request.query
    status = q.get("status")
    if status is not None and status not in STATUSES:
        raise bad_parameter(f"status must be one of {', '.join(sorted(STATUSES))}")
    for name in ("tags", "not-tags"):
        if name in q and not _items(q[name]):
            raise bad_parameter(f"{name} must not be empty")


def _predicates(request: web.Request) -> list[Callable[[Server], bool]]:
    """One test per filter given (built once per call: a listing tests every server)."""
    q = request.query
    preds: list[Callable[[Server], bool]] = []
    if (
        "ip" in q
        or "ip_eq" in q
        or q.get("enterprise_project_id", ENTERPRISE_PROJECT) not in _ALL_PROJECTS
    ):
        return [lambda s: False]  # no simulated server has an address or another project
    if "status" in q:
        preds.append(lambda s: s.status == q["status"])
    if "name" in q:
        preds.append(lambda s: q["name"] in s.name)
    if "flavor" in q:
        preds.append(lambda s: s.flavor_id == q["flavor"])
    if "reservation_id" in q:
        preds.append(lambda s: q["reservation_id"] == f"r-{s.id[:8]}")
    wanted, unwanted = _items(q.get("tags", "")), _items(q.get("not-tags", ""))
    if wanted:
        preds.append(lambda s: all(_has(one_d_tags(s), t) for t in wanted))
    if unwanted:
        preds.append(lambda s: not all(_has(one_d_tags(s), t) for t in unwanted))
    return preds


def _by_ids(ctx: SimContext, project_id: str, raw: str) -> list[dict[str, object]]:
    """`server_id=id1,id2`: every other filter is ignored; unknown ids answer `id` + `fault`."""
    out: list[dict[str, object]] = []
    for sid in _items(raw):
        server = huawei_jobs.find(ctx.world, sid, ECS, project_id)
        if server is not None:
            out.append(server_detail(ctx, server))
        else:
            fault = {"code": 404, "message": "The ECS does not exist.", "details": ""}
            out.append({"id": sid, "fault": fault})
    return out


def _page(
    ctx: SimContext, request: web.Request, project_id: str, preds: list[Callable[[Server], bool]]
) -> tuple[list[Server], int]:
    """The page asked for (by marker or page number) of the live ECSs passing `preds`, newest
    first, and how many pass."""
    limit = _int(request, "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT
    marker = request.query.get("marker")
    live = ctx.world.live_in_order(ECS, project_id)
    keep = (lambda s: all(p(s) for p in preds)) if preds else None
    if marker is None:
        start = (max(1, _int(request, "offset", 0, None) or 1) - 1) * limit
        return page_of(live, keep, start, limit)
    total = page_of(live, keep, 0, 0)[1]
    found = ctx.world.servers.get(marker)
    if (
        found is None
        or found.kind != ECS
        or found.project_id != project_id
        or found.deleted_at is not None
        or (keep is not None and not keep(found))
    ):
        raise bad_parameter(f"marker {marker} not found")
    at = ctx.world.servers.position(live, marker)
    older = (live[i] for i in range(at - 1, -1, -1) if keep is None or keep(live[i]))
    return list(itertools.islice(older, limit)), total


async def get_detail(request: web.Request) -> web.Response:
    """`GET /v1/{project_id}/cloudservers/detail`: filtered, paged by page number or marker."""
    ctx = ctx_of(request)
    project_id = request.match_info["project_id"]
    await huawei_iam.authenticate(request, project_id)
    await admit(request, dialect=HUAWEI, rate_key="huawei-ecs:detail", action="list")
    if "server_id" in request.query:
        found = _by_ids(ctx, project_id, request.query["server_id"])
        return json_response({"count": len(found), "servers": found})
    _check_filters(request)
    # Newest first: the world holds its servers in creation order.
    page, total = _page(ctx, request, project_id, _predicates(request))
    return json_response({"count": total, "servers": [server_detail(ctx, s) for s in page]})


async def get_server(request: web.Request) -> web.Response:
    """`GET /v1/{project_id}/cloudservers/{server_id}` -> `{"server": {...}}`."""
    ctx = ctx_of(request)
    project_id, server_id = request.match_info["project_id"], request.match_info["server_id"]
    await huawei_iam.authenticate(request, project_id)
    await admit(
        request, dialect=HUAWEI, rate_key="huawei-ecs:show", servers=[server_id], action="show"
    )
    server = huawei_jobs.find(ctx.world, server_id, ECS, project_id)
    if server is None:
        raise huawei_jobs.reply("Ecs.0114")
    return json_response({"server": server_detail(ctx, server)})


def setup_list(app: web.Application) -> None:
    """Register the list route; it must come before any `cloudservers/{server_id}` GET route."""
    app.router.add_get("/v1/{project_id}/cloudservers/detail", get_detail)


def setup_show(app: web.Application) -> None:
    """Register the show route, after every fixed `cloudservers/<name>` GET route."""
    app.router.add_get("/v1/{project_id}/cloudservers/{server_id}", get_server)
