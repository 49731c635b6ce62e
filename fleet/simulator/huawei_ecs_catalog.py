"""Huawei ECS v1 flavors and tenant quotas: `GET .../cloudservers/flavors` and `.../limits`.

Both are in seed 001 (digest Appendix C):
- §5.4.1 "Querying Details About Flavors and Extended Flavor Information",
  `GET /v1/{project_id}/cloudservers/flavors?availability_zone=`: `{"flavors": [...]}` with the
  fields of Table 5-39 and their documented defaults (`vcpus` and `disk` strings, `ram` an
  integer, `disk` "0", `swap` "", `OS-FLV-EXT-DATA:ephemeral` 0, `OS-FLV-DISABLED:disabled`
  false, `rxtx_factor` 1.0, `rxtx_quota`/`rxtx_cap` null, `os-flavor-access:is_public` true, two
  `links` and `os_extra_specs` as in the example response). The SDK's `ListFlavorsRequest` adds
  `flavor_id` (exact), `limit` (default 1000) and `marker` ("start after the flavor with this
  id"); those come from the SDK's model.
  Only the world's ECS flavors are listed. An `availability_zone` that no simulated server is in
  lists nothing (the seed: "flavors in the normal, obt, or promotion states are returned" for the
  AZ; every simulated flavor is `normal` in every AZ of the world).
- §5.7.1 "Querying Tenant Quotas", `GET /v1/{project_id}/cloudservers/limits`:
  `{"absolute": {...}}` with Table 5-61's fields. The maxima are the seed's example response
  (a maximum is raised to the usage when the world holds more than it); the `total*Used` figures
  are computed from the project's live ECSs (instances, vCPUs, RAM in MiB); the security-group,
  server-group and floating-IP usage, which the world does not model, are the example's.

Errors (`{"error": {"code", "message"}}`): a bad `limit` or unknown `marker` is 400 `Ecs.0005`
naming it. Rate keys (no ECS limits are documented: unlimited unless set): `huawei-ecs:flavors`,
`huawei-ecs:limits`.
"""

from __future__ import annotations

from aiohttp import web

from fleet.simulator import huawei_iam
from fleet.simulator.core import HUAWEI, SimContext, admit, ctx_of, json_response
from fleet.simulator.huawei_ecs_query import bad_parameter
from fleet.simulator.world import ECS, Flavor

# Seed 001 §5.7.1 example response.
QUOTA_EXAMPLE: dict[str, int] = {
    "maxServerMeta": 128,
    "maxPersonality": 5,
    "maxImageMeta": 128,
    "maxPersonalitySize": 10240,
    "maxSecurityGroupRules": 20,
    "maxTotalKeypairs": -1,
    "maxSecurityGroups": 10,
    "totalFloatingIpsUsed": 0,
    "maxTotalCores": 20480,
    "totalSecurityGroupsUsed": 1,
    "maxTotalFloatingIps": 10,
    "maxTotalInstances": 2048,
    "maxTotalRAMSize": 25165824,
    "maxServerGroups": 10,
    "maxServerGroupMembers": 16,
    "totalServerGroupsUsed": 2,
}
DEFAULT_AZ = "az1"


def _generation(flavor_id: str) -> str:
    return flavor_id.split(".", 1)[0]


def flavor_json(ctx: SimContext, project_id: str, flavor: Flavor) -> dict[str, object]:
    """One flavor as Table 5-39 and the §5.4.1 example show it."""
    base = ctx.base_url
    return {
        "id": flavor.id,
        "name": flavor.name,
        "vcpus": str(flavor.vcpus),
        "ram": flavor.ram,
        "disk": "0",
        "swap": "",
        "links": [
            {"rel": "self", "href": f"{base}/v1.0/{project_id}/flavors/{flavor.id}", "type": None},
            {"rel": "bookmark", "href": f"{base}/{project_id}/flavors/{flavor.id}", "type": None},
        ],
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "rxtx_factor": 1.0,
        "OS-FLV-DISABLED:disabled": False,
        "rxtx_quota": None,
        "rxtx_cap": None,
        "os-flavor-access:is_public": True,
        "os_extra_specs": {
            "ecs:virtualization_env_types": "CloudCompute",
            "ecs:generation": _generation(flavor.id),
            "ecs:performancetype": "normal",
            "resource_type": f"IOoptimized{_generation(flavor.id).upper()}",
            "cond:operation:status": "normal",
        },
    }


def _zones(ctx: SimContext) -> set[str]:
    return {s.availability_zone for s in ctx.world.servers.values()} | {DEFAULT_AZ}


def _flavor_page(request: web.Request, flavors: list[Flavor]) -> list[Flavor]:
    raw = request.query.get("limit")
    limit = 1000
    if raw is not None:
        if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
            raise bad_parameter("limit must be a positive integer")
        limit = int(raw)
    marker = request.query.get("marker")
    if marker is not None:
        ids = [f.id for f in flavors]
        if marker not in ids:
            raise bad_parameter(f"marker {marker} not found")
        flavors = flavors[ids.index(marker) + 1 :]
    return flavors[:limit]


async def get_flavors(request: web.Request) -> web.Response:
    """`GET /v1/{project_id}/cloudservers/flavors[?availability_zone=&flavor_id=&limit=&marker=]`."""
    ctx = ctx_of(request)
    project_id = request.match_info["project_id"]
    await huawei_iam.authenticate(request, project_id)
    await admit(request, dialect=HUAWEI, rate_key="huawei-ecs:flavors", action="flavors")
    q = request.query
    flavors = sorted((f for f in ctx.world.flavors.values() if f.kind == ECS), key=lambda f: f.id)
    if "availability_zone" in q and q["availability_zone"] not in _zones(ctx):
        flavors = []
    if "flavor_id" in q:
        flavors = [f for f in flavors if f.id == q["flavor_id"]]
    page = _flavor_page(request, flavors)
    return json_response({"flavors": [flavor_json(ctx, project_id, f) for f in page]})


def quotas(ctx: SimContext, project_id: str, kind: str = ECS) -> dict[str, int]:
    """Table 5-61: the example's maxima, the usage of the project's live servers of `kind` (ECS
    here; BMS answers the same fields, `huawei_bms_flavors`)."""
    live = [s for s in ctx.world.visible(kind, project_id) if s.deleted_at is None]
    used = {
        "totalInstancesUsed": len(live),
        "totalCoresUsed": sum(ctx.world.flavors[s.flavor_id].vcpus for s in live),
        "totalRAMUsed": sum(ctx.world.flavors[s.flavor_id].ram for s in live),
    }
    absolute = {**QUOTA_EXAMPLE, **used}
    if kind in ctx.world.catalog.quotas:  # the world's quota (see `provision`)
        absolute["maxTotalInstances"] = ctx.world.catalog.quotas[kind]
    for used_key, max_key in (
        ("totalInstancesUsed", "maxTotalInstances"),
        ("totalCoresUsed", "maxTotalCores"),
        ("totalRAMUsed", "maxTotalRAMSize"),
    ):
        absolute[max_key] = max(absolute[max_key], absolute[used_key])
    return absolute


async def get_limits(request: web.Request) -> web.Response:
    """`GET /v1/{project_id}/cloudservers/limits` -> `{"absolute": {...}}`."""
    ctx = ctx_of(request)
    project_id = request.match_info["project_id"]
    await huawei_iam.authenticate(request, project_id)
    await admit(request, dialect=HUAWEI, rate_key="huawei-ecs:limits", action="limits")
    return json_response({"absolute": quotas(ctx, project_id)})


def setup(app: web.Application) -> None:
    """Register both routes (before `cloudservers/{server_id}`, see `huawei_ecs.setup`)."""
    app.router.add_get("/v1/{project_id}/cloudservers/flavors", get_flavors)
    app.router.add_get("/v1/{project_id}/cloudservers/limits", get_limits)
