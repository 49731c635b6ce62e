"""Nova compute v2.1, mounted twice: Huawei native and OpenStack / EasyStack.

- Huawei native at `/v2.1/{project_id}/...` on the ECS endpoint (digest §2.2, §3.2): Huawei IAM
  auth, ECS and BMS servers in one list, version documents at `GET /` and `GET /v2.1` (max 2.60),
  1D tags from 2.26, `Connection: close` on every answer.
- OpenStack / EasyStack at `/compute/v2.1/...` (digest §2.4, §3.4), the URL the Keystone catalog
  gives, also accepted with the project id after `v2.1` as EasyStack's recycle-bin and flavor
  examples write it: Keystone tokens, max 2.96 (what current openstacksdk asks for), the recycle
  bin, `live_resize`, the tag API as upstream Nova serves it, or, in a world with `tag_api =
  false`, max 2.25 and no tags at all (see `nova_base.OPENSTACK_SURFACE`).

Error bodies: Nova's own errors on both mounts use Nova's named wrappers (`{"itemNotFound": {"code":
404, "message": "Instance ... could not be found."}}`, `conflictingRequest` with "Cannot 'os-stop'
instance ... while it is in vm_state stopped"). The EasyStack seed's one error example, `{"error":
{"message", "code", "title"}}`, is the 401 that keystonemiddleware answers before a request reaches
Nova, and that is where the simulator uses it; EasyStack is Nova-based and documents no other
shape for 404/409, upstream Nova's fault wrapper writes the named form, and openstacksdk and the
`openstack`/`nova` CLIs read the message from either.

Rate keys are `<prefix>:list|show|action|delete|tags|instance-actions|flavors|misc|versions` with
prefix `huawei-nova` or `openstack`.
"""

from __future__ import annotations

from aiohttp import web

from fleet.simulator import (
    huawei_iam,
    keystone,
    nova_actions,
    nova_create,
    nova_instance_actions,
    nova_tags,
)
from fleet.simulator.core import CTX, admit, ctx_of, json_response
from fleet.simulator.keystone import base_url
from fleet.simulator.nova_base import (
    HUAWEI_SURFACE,
    Call,
    Surface,
    SurfaceHandler,
    bind,
    fail,
    lookup,
    open_call,
    openstack_surface,
)
from fleet.simulator.nova_instance_actions import stamp
from fleet.simulator.nova_query import paginate, server_page
from fleet.simulator.nova_views import (
    flavor_body,
    host_of,
    legacy_v2_entry,
    server_body,
    server_brief,
    version_entry,
)
from fleet.simulator.world import Flavor


async def _list(request: web.Request, surface: Surface, *, detail: bool) -> web.Response:
    call = await open_call(request, surface, "list")
    page, next_links = server_page(call)
    view = server_body if detail else server_brief
    body: dict[str, object] = {"servers": [view(call, s) for s in page]}
    if next_links:
        body["servers_links"] = next_links
    return json_response(body)


async def list_servers(request: web.Request, surface: Surface) -> web.Response:
    """`GET /servers`: id, name and links of the filtered servers."""
    return await _list(request, surface, detail=False)


async def list_detail(request: web.Request, surface: Surface) -> web.Response:
    """`GET /servers/detail`: full bodies of the filtered servers."""
    return await _list(request, surface, detail=True)


async def show_server(request: web.Request, surface: Surface) -> web.Response:
    """`GET /servers/{id}`: one server, 404 `itemNotFound` if unknown."""
    server_id = request.match_info["server_id"]
    call = await open_call(request, surface, "show", servers=(server_id,))
    return json_response({"server": server_body(call, lookup(call, server_id))})


def _flavors(request: web.Request, surface: Surface) -> list[Flavor]:
    world = ctx_of(request).world
    return sorted(
        (f for f in world.flavors.values() if f.kind in surface.kinds), key=lambda f: f.id
    )


async def _list_flavors(request: web.Request, surface: Surface, *, detail: bool) -> web.Response:
    call = await open_call(request, surface, "flavors")
    flavors = _flavors(request, surface)
    ids = [f.id for f in flavors]

    def position(marker: str) -> int | None:
        return ids.index(marker) + 1 if marker in ids else None

    page, next_links = paginate(
        call, flavors, item_id=lambda f: f.id, marker_position=position, collection="flavors"
    )
    body: dict[str, object] = {"flavors": [flavor_body(call, f, detail=detail) for f in page]}
    if next_links:
        body["flavors_links"] = next_links
    return json_response(body)


async def list_flavors(request: web.Request, surface: Surface) -> web.Response:
    """`GET /flavors`: id, name, links."""
    return await _list_flavors(request, surface, detail=False)


async def list_flavors_detail(request: web.Request, surface: Surface) -> web.Response:
    """`GET /flavors/detail`: the resize targets with their sizes."""
    return await _list_flavors(request, surface, detail=True)


async def show_flavor(request: web.Request, surface: Surface) -> web.Response:
    """`GET /flavors/{id}`."""
    call = await open_call(request, surface, "flavors")
    flavor_id = request.match_info["flavor_id"]
    flavor = next((f for f in _flavors(request, surface) if f.id == flavor_id), None)
    if flavor is None:
        raise fail(surface, 404, f"Flavor {flavor_id} could not be found.")
    return json_response({"flavor": flavor_body(call, flavor, detail=True)})


def _zones(call: Call) -> dict[str, set[str]]:
    """Zone name -> the compute hosts of the surface's live servers in it."""
    zones: dict[str, set[str]] = {}
    for s in call.ctx.world.servers.values():
        if s.kind in call.surface.kinds:
            hosts = zones.setdefault(s.availability_zone, set())
            if s.deleted_at is None:
                hosts.add(host_of(s.id))
    return zones


async def availability_zones(request: web.Request, surface: Surface) -> web.Response:
    """`GET /os-availability-zone`: the zones the servers live in (`hosts` null)."""
    call = await open_call(request, surface, "misc")
    info = [
        {"zoneName": z, "zoneState": {"available": True}, "hosts": None}
        for z in sorted(_zones(call))
    ]
    return json_response({"availabilityZoneInfo": info})


async def availability_zones_detail(request: web.Request, surface: Surface) -> web.Response:
    """`GET /os-availability-zone/detail` (upstream Nova, documented by EasyStack): every zone
    with its hosts and their services (`nova-compute` in the server zones; the control services
    in Nova's `internal` zone), each `available`, `active` and `updated_at` now."""
    call = await open_call(request, surface, "misc")
    now = stamp(call.ctx.world.clock.now())

    def services(*names: str) -> dict[str, object]:
        return {n: {"available": True, "active": True, "updated_at": now} for n in names}

    info: list[dict[str, object]] = [
        {
            "zoneName": "internal",
            "zoneState": {"available": True},
            "hosts": {"controller": services("nova-conductor", "nova-scheduler")},
        },
    ]
    for zone, hosts in sorted(_zones(call).items()):
        info.append(
            {
                "zoneName": zone,
                "zoneState": {"available": True},
                "hosts": {h: services("nova-compute") for h in sorted(hosts)},
            }
        )
    return json_response({"availabilityZoneInfo": info})


async def limits(request: web.Request, surface: Surface) -> web.Response:
    """`GET /limits`: `rate` is empty, as on Huawei (digest A-49): limits are not discoverable."""
    call = await open_call(request, surface, "misc")
    used = [
        s
        for s in call.ctx.world.servers.values()
        if s.kind in surface.kinds and s.project_id == call.project_id and s.deleted_at is None
    ]
    absolute = {
        "maxTotalInstances": sum(
            call.ctx.world.catalog.quotas.get(k, 10000) for k in surface.kinds
        ),
        "maxTotalCores": 100000,
        "maxTotalRAMSize": 409600000,
        "maxServerMeta": 128,
        "maxImageMeta": 128,
        "maxPersonality": 5,
        "maxPersonalitySize": 10240,
        "maxTotalKeypairs": 100,
        "maxServerGroups": 10,
        "maxServerGroupMembers": 10,
        "totalInstancesUsed": len(used),
        "totalCoresUsed": sum(_vcpus(call.ctx.world.flavors.get(s.flavor_id)) for s in used),
        "totalRAMUsed": sum(_ram(call.ctx.world.flavors.get(s.flavor_id)) for s in used),
        "totalServerGroupsUsed": 0,
    }
    return json_response({"limits": {"rate": [], "absolute": absolute}})


def _vcpus(flavor: Flavor | None) -> int:
    return 0 if flavor is None else flavor.vcpus


def _ram(flavor: Flavor | None) -> int:
    return 0 if flavor is None else flavor.ram


async def _versions_admit(request: web.Request, surface: Surface) -> str:
    await admit(request, dialect=surface.dialect, rate_key=surface.rate_key("versions"))
    return base_url(request)


async def huawei_versions(request: web.Request, surface: Surface) -> web.Response:
    """Huawei `GET /`: v2.0 (SUPPORTED) and v2.1 (CURRENT, max 2.60) ([S1] §6.1.1)."""
    base = await _versions_admit(request, surface)
    entries = [legacy_v2_entry(f"{base}/v2/"), version_entry(surface, f"{base}/v2.1/")]
    return json_response({"versions": entries})


async def huawei_version(request: web.Request, surface: Surface) -> web.Response:
    """Huawei `GET /v2.1` ([S1] §6.1.2)."""
    base = await _versions_admit(request, surface)
    return json_response({"version": version_entry(surface, f"{base}/v2.1/")})


async def compute_versions(request: web.Request, surface: Surface) -> web.Response:
    """OpenStack `GET /compute/`: the versions list."""
    base = await _versions_admit(request, surface)
    return json_response({"versions": [version_entry(surface, f"{base}/compute/v2.1/")]})


async def compute_version(request: web.Request, surface: Surface) -> web.Response:
    """OpenStack `GET /compute/v2.1`: the document clients discover from the catalog URL."""
    base = await _versions_admit(request, surface)
    return json_response({"version": version_entry(surface, f"{base}/compute/v2.1/")})


_READS: list[tuple[str, SurfaceHandler]] = [
    ("/servers", list_servers),
    ("/servers/detail", list_detail),
    ("/servers/{server_id}", show_server),
    ("/flavors", list_flavors),
    ("/flavors/detail", list_flavors_detail),
    ("/flavors/{flavor_id}", show_flavor),
    ("/os-availability-zone", availability_zones),
    ("/os-availability-zone/detail", availability_zones_detail),
    ("/servers/{server_id}/os-instance-actions", nova_instance_actions.list_actions),
    ("/servers/{server_id}/os-instance-actions/{request_id}", nova_instance_actions.show_action),
    ("/limits", limits),
]


def _mount(app: web.Application, prefix: str, surface: Surface, *, history: bool = True) -> None:
    """The routes of one Nova mount; without `history`, no `os-instance-actions` (a cloud that
    does not expose them answers 404, as for any route it does not serve)."""
    r = app.router
    for path, fn in _READS:
        if history or "os-instance-actions" not in path:
            r.add_get(prefix + path, bind(surface, fn), allow_head=False)
    r.add_post(prefix + "/servers", bind(surface, nova_create.create_server))
    r.add_post(prefix + "/servers/{server_id}/action", bind(surface, nova_actions.post_action))
    r.add_delete(prefix + "/servers/{server_id}", bind(surface, nova_actions.delete_server))
    if not surface.tag_api:
        return
    tags, tag = prefix + "/servers/{server_id}/tags", prefix + "/servers/{server_id}/tags/{tag}"
    r.add_get(tags, bind(surface, nova_tags.get_tags), allow_head=False)
    r.add_put(tags, bind(surface, nova_tags.put_tags))
    r.add_delete(tags, bind(surface, nova_tags.delete_tags))
    r.add_get(tag, bind(surface, nova_tags.get_tag), allow_head=False)
    r.add_put(tag, bind(surface, nova_tags.put_tag))
    r.add_delete(tag, bind(surface, nova_tags.delete_tag))


def setup(app: web.Application) -> None:
    """Register both mounts and their version documents."""
    r = app.router
    ctx = app[CTX]
    hw, os_ = HUAWEI_SURFACE, openstack_surface(ctx.world.openstack_tag_api)
    users = ctx.world.actions.users  # who the instance actions of each project name
    users[ctx.world.huawei_project_id] = huawei_iam.user_id(ctx)
    users[ctx.world.openstack_project_id] = keystone.user_id(ctx)
    r.add_get("/", bind(hw, huawei_versions), allow_head=False)
    for path in ("/v2.1", "/v2.1/"):
        r.add_get(path, bind(hw, huawei_version), allow_head=False)
    for path in ("/compute", "/compute/"):
        r.add_get(path, bind(os_, compute_versions), allow_head=False)
    for path in ("/compute/v2.1", "/compute/v2.1/"):
        r.add_get(path, bind(os_, compute_version), allow_head=False)
    _mount(app, "/v2.1/{project_id}", hw)
    history = ctx.world.openstack_instance_actions
    _mount(app, "/compute/v2.1", os_, history=history)
    _mount(app, "/compute/v2.1/{project_id:[0-9a-f]{32}}", os_, history=history)
