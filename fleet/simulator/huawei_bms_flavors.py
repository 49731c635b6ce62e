"""Huawei BMS v1 flavors and tenant quotas: `GET /v1/{project_id}/baremetalservers/flavors` and
`.../baremetalservers/limits`.

Seed 000 Table 2 gives the URI ("Querying Flavor Details and Extended Flavor Information") and
its limit, 500 requests per minute (rate key `huawei-bms:flavors`). The body is the official
SDK's (huaweicloudsdkbms v1 ListBaremetalFlavorDetailExtendsResponse): `{"flavors": [...]}`, one
`FlavorsResp` per BMS flavor of the world with the SDK's JSON names and types: `vcpus` and `disk`
are strings, `ram` an integer (MB); `swap`, `rxtx_quota`, `rxtx_cap` strings and
`OS-FLV-EXT-DATA:ephemeral` an integer (all "unused" per the SDK); `os-flavor-access:is_public`
true; `links` [{rel, href, type}]; `os_extra_specs` with `resource_type` "ironic",
`capabilities:hypervisor_type` "ironic", `capabilities:cpu_arch` x86_64,
`capabilities:board_type` the name's abbreviation as the SDK describes it ("physical.o2.medium"
-> "o2m"), `baremetal:extBootType` LocalDisk, `baremetal:__support_evs`, `baremetal:net_num`,
the `*_detail` descriptions, and `cond:operation:status` "normal" (on sale).

`availability_zone` narrows the list to the flavors sold in that zone: every BMS flavor is sold
in every zone the world's servers live in, and a zone the world does not have has none (an empty
list, not an error: the SDK documents no error for it).

Tenant quotas: seed 000 Table 2 gives the URI ("Querying Tenant Quotas") and its limit, 500
requests per minute (rate key `huawei-bms:limits`); the body is the official SDK's
`ShowTenantQuotaResponse`, `{"absolute": {...}}` with the fields of its `Absolute` model, which
are ECS's (seed 001 Table 5-61): `maxTotalInstances` is the world's BMS quota, the `total*Used`
figures are the project's live BMSs, and the figures the world does not model are ECS's example.
"""

from __future__ import annotations

from aiohttp import web

from fleet.simulator import huawei_iam
from fleet.simulator.core import HUAWEI, SimContext, admit, ctx_of, json_response
from fleet.simulator.huawei_ecs_catalog import quotas
from fleet.simulator.world import BMS, Flavor


def board_type(name: str) -> str:
    """The SDK's abbreviation of a flavor name: "physical.o2.medium" -> "o2m"."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[2]:
        return parts[1] + parts[2][0]
    return name


def flavor_json(ctx: SimContext, project_id: str, flavor: Flavor) -> dict[str, object]:
    """One BMS flavor in the SDK's `FlavorsResp` shape."""
    href = f"{ctx.base_url}/v1/{project_id}/baremetalservers/flavors/{flavor.id}"
    return {
        "id": flavor.id,
        "name": flavor.name,
        "vcpus": str(flavor.vcpus),
        "ram": flavor.ram,
        "disk": str(flavor.disk),
        "swap": "",
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "OS-FLV-DISABLED:disabled": False,
        "rxtx_factor": 1.0,
        "rxtx_quota": "",
        "rxtx_cap": "",
        "os-flavor-access:is_public": True,
        "links": [{"rel": "self", "href": href, "type": None}],
        "os_extra_specs": {
            "resource_type": "ironic",
            "capabilities:cpu_arch": "x86_64",
            "baremetal:disk_detail": f"{flavor.disk} GB local disk",
            "capabilities:hypervisor_type": "ironic",
            "baremetal:__support_evs": "true",
            "baremetal:extBootType": "LocalDisk",
            "capabilities:board_type": board_type(flavor.name),
            "baremetal:net_num": "2",
            "baremetal:netcard_detail": "2 x 10GE",
            "baremetal:cpu_detail": f"x86_64, {flavor.vcpus} threads",
            "baremetal:memory_detail": f"{flavor.ram // 1024} GB",
            "cond:operation:status": "normal",
        },
    }


async def get_flavors(request: web.Request) -> web.Response:
    """`GET /v1/{project_id}/baremetalservers/flavors`: the BMS flavors (of one zone)."""
    ctx = ctx_of(request)
    project_id = request.match_info["project_id"]
    await huawei_iam.authenticate(request, project_id)
    await admit(request, dialect=HUAWEI, rate_key="huawei-bms:flavors", action="flavors")
    flavors = [f for f in ctx.world.flavors.values() if f.kind == BMS]
    zone = request.query.get("availability_zone")
    if zone is not None and zone not in {s.availability_zone for s in ctx.world.servers.values()}:
        flavors = []
    return json_response({"flavors": [flavor_json(ctx, project_id, f) for f in flavors]})


async def get_limits(request: web.Request) -> web.Response:
    """`GET /v1/{project_id}/baremetalservers/limits` -> `{"absolute": {...}}`."""
    ctx = ctx_of(request)
    project_id = request.match_info["project_id"]
    await huawei_iam.authenticate(request, project_id)
    await admit(request, dialect=HUAWEI, rate_key="huawei-bms:limits", action="limits")
    return json_response({"absolute": quotas(ctx, project_id, BMS)})


def setup(app: web.Application) -> None:
    """Register both routes (before `/baremetalservers/{server_id}`, which would match them)."""
    app.router.add_get("/v1/{project_id}/baremetalservers/flavors", get_flavors)
    app.router.add_get("/v1/{project_id}/baremetalservers/limits", get_limits)
