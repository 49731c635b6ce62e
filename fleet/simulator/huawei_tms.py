"""Huawei TMS (Tag Management Service) resource-tag batch APIs, for ECSs.

TMS is in neither the seeds nor the digest, which say only that "The Tag Management Service (TMS)
uses this API [the ECS tag batch APIs, seed 001 §5.9.3/§5.9.4] to batch manage the tags". The
routes and bodies come from the official SDK's models (huaweicloudsdktms v1, installed with
c7n-huaweicloud; Cloud Custodian's `tag`/`remove-tag` actions call them):
- `POST /v1.0/resource-tags/batch-create`, `ReqCreateTag`: `{"project_id", "resources":
  [{"resource_id", "resource_type"}], "tags": [{"key", "value"}]}`;
- `POST /v1.0/resource-tags/batch-delete`, `ReqDeleteTag`: the same with `tags: [{"key",
  "value"?}]`;
- both answer 200 `{"failed_resources": [{"resource_id", "resource_type", "error_code",
  "error_msg"}]}` (`CreateResourceTagResponse` / `DeleteResourceTagResponse`): a batch is
  applied resource by resource, and a resource that cannot take the change is listed there.
Since TMS "uses" the ECS tag API, each ECS is changed exactly as `POST
.../servers/{server_id}/tags/action` would change it (`huawei_tags.apply_tags`: the same rules,
idempotence and codes, e.g. `Ecs.0905` for an 11th tag), and a failed resource carries that
call's error code and message; an unknown ECS carries `Ecs.0614` "The ECS does not exist.".
Only `resource_type` `ecs` is simulated; any other type fails with the simulator's own code
`TMS.0002` (TMS's own codes are not in any source here).

TMS is a global service: the SDK signs with `GlobalCredentials` (AK/SK plus `X-Domain-Id`, no
project in the path), so any valid Huawei token or signature is accepted; `project_id`, needed
for region-level resources such as ECSs, must be the simulated project. A malformed body (not
1 to 50 resources, not 1 to 10 tags, a missing key) is 400 in the generic Huawei shape
`{"error_code", "error_msg"}` (digest §5.1), with the simulator's code `TMS.0002`.
Rate key: `huawei-tms:tags` (one per request; the resource ids are logged as server ids).
"""

from __future__ import annotations

import json

from aiohttp import web

from fleet.simulator import huawei_iam
from fleet.simulator.core import (
    HUAWEI,
    SimReply,
    admit,
    ctx_of,
    json_response,
    read_json,
)
from fleet.simulator.huawei_jobs import find
from fleet.simulator.huawei_tags import apply_tags
from fleet.simulator.world import ECS, World

MAX_RESOURCES, MAX_TAGS = 50, 10
_NOT_FOUND = ("Ecs.0614", "The ECS does not exist.")


def tms_error(message: str, status: int = 400) -> SimReply:
    return SimReply(json_response({"error_code": "TMS.0002", "error_msg": message}, status=status))


def _resources(data: dict[str, object]) -> list[tuple[str, str]]:
    items = data.get("resources")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_RESOURCES:
        raise tms_error(f"resources must list 1 to {MAX_RESOURCES} resources")
    out: list[tuple[str, str]] = []
    for item in items:
        rid = item.get("resource_id") if isinstance(item, dict) else None
        rtype = item.get("resource_type") if isinstance(item, dict) else None
        if not isinstance(rid, str) or not rid or not isinstance(rtype, str) or not rtype:
            raise tms_error("every resource needs a resource_id and a resource_type")
        out.append((rid, rtype))
    return out


def _tags(data: dict[str, object]) -> list[dict[str, object]]:
    items = data.get("tags")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_TAGS:
        raise tms_error(f"tags must list 1 to {MAX_TAGS} tags")
    if not all(isinstance(i, dict) and isinstance(i.get("key"), str) for i in items):
        raise tms_error("every tag needs a key")
    return items


def _failure(rid: str, rtype: str, code: str, message: str) -> dict[str, object]:
    return {"resource_id": rid, "resource_type": rtype, "error_code": code, "error_msg": message}


def _apply_one(
    world: World, project_id: str, action: str, rid: str, tags: list[dict[str, object]]
) -> tuple[str, str] | None:
    """Change one ECS like the ECS tag API would; the (code, message) of a refusal, or None."""
    server = find(world, rid, ECS, project_id)
    if server is None:
        return _NOT_FOUND
    try:
        apply_tags(server, action, {"action": action, "tags": tags})
    except SimReply as refused:
        error = json.loads(refused.response.text or "{}").get("error", {})
        return str(error.get("code")), str(error.get("message"))
    server.updated = world.clock.now()
    return None


async def _batch(request: web.Request, action: str) -> web.Response:
    ctx = ctx_of(request)
    await huawei_iam.authenticate_global(request)
    data = await read_json(request, HUAWEI)
    items = data.get("resources")
    logged = [
        str(i["resource_id"])
        for i in (items if isinstance(items, list) else [])
        if isinstance(i, dict) and isinstance(i.get("resource_id"), str)
    ]
    await admit(
        request, dialect=HUAWEI, rate_key="huawei-tms:tags", servers=logged, action=f"tms_{action}"
    )
    resources, tags = _resources(data), _tags(data)
    project_id = data.get("project_id")
    if project_id != ctx.world.huawei_project_id:
        raise tms_error("project_id must be the project of the resources (region-level: ECS)")
    failed: list[dict[str, object]] = []
    for rid, rtype in resources:
        if rtype != ECS:
            failed.append(_failure(rid, rtype, "TMS.0002", f"unsupported resource_type {rtype}"))
            continue
        refusal = _apply_one(ctx.world, str(project_id), action, rid, tags)
        if refusal is not None:
            failed.append(_failure(rid, rtype, *refusal))
    return json_response({"failed_resources": failed})


async def post_batch_create(request: web.Request) -> web.Response:
    """`POST /v1.0/resource-tags/batch-create`."""
    return await _batch(request, "create")


async def post_batch_delete(request: web.Request) -> web.Response:
    """`POST /v1.0/resource-tags/batch-delete`."""
    return await _batch(request, "delete")


def setup(app: web.Application) -> None:
    """Register the two TMS routes (called from the ECS dialect's setup: TMS tags ECSs here)."""
    app.router.add_post("/v1.0/resource-tags/batch-create", post_batch_create)
    app.router.add_post("/v1.0/resource-tags/batch-delete", post_batch_delete)
