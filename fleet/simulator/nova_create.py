"""Nova `POST /servers` on EasyStack (`/compute/v2.1/servers`) and on the Huawei ECS endpoint's
native mount (`/v2.1/{project_id}/servers`).

Sources: EasyStack seed §1.4 (create, microversion 2.67 recommended; "the create response only
shows the server ID, its links and the admin password", so the answer is 202 `{"server": {"id",
"links", "OS-DCF:diskConfig", "security_groups", "adminPass"}}` as its §1.3.1 curl example;
errors 400/401/403/404/409; create-time `tags` from 2.52), seed 001 §6.2.1 (Huawei's native
create) and openstacksdk's `compute.v2.server.Server` (`name`, `flavorRef`, `imageRef`,
`networks` [{`uuid`}] or the string `auto`/`none` from 2.37, `availability_zone`, `tags`,
`adminPass`, `key_name`, `metadata`, `min_count`, `max_count`). `metadata` (seed §1.4: string
keys and values of at most 255 bytes) is kept and shown in the server's body; `tags` below
microversion 2.52 are a 400, as upstream's request schema has no `tags` before it. Errors follow upstream Nova's
messages: a missing or bad field 400 "Invalid input for field/attribute ..."; an unknown flavor
400 "Flavor <id> could not be found."; an unknown image 400 "Can not find requested image"; an
unknown network 400 "Network <id> could not be found."; an unknown zone 400 "The requested
availability zone is not available"; quota 403 "Quota exceeded for instances: Requested N, but
already used U of Q instances". `min_count`/`max_count` create up to `max_count` servers at once
(at least `min_count` must fit the quota); with more than one they are named `<name>-1`,
`<name>-2`, ... (upstream's default `multi_instance_display_name_template`).

On Huawei the network `uuid` is a subnet id of the world's catalog (Huawei's native networks are
its VPC subnets); the servers are ECSs. Rate keys: `openstack:create` and `huawei-nova:create`
(no documented limit). Servers start in BUILD and settle ACTIVE (or ERROR, fault `create_fail`).
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import NoReturn

from aiohttp import web

from fleet.simulator import provision
from fleet.simulator.core import read_json
from fleet.simulator.nova_base import Call, Surface, fail, open_call
from fleet.simulator.nova_views import links
from fleet.simulator.world import ECS, OPENSTACK

MAX_TAGS = 50


def _field(call: Call, name: str) -> NoReturn:
    raise fail(call.surface, 400, f"Invalid input for field/attribute {name}.")


def _networks(call: Call, server: dict[str, object]) -> None:
    nets = server.get("networks")
    if nets is None and not call.at_least(2, 37):
        return
    if nets in ("auto", "none") and call.at_least(2, 37):
        return
    if not isinstance(nets, list) or not all(isinstance(n, dict) for n in nets):
        _field(call, "networks")
    known = (
        call.ctx.world.catalog.subnets
        if call.surface.name == "huawei"
        else call.ctx.world.catalog.networks
    )
    for net in nets:
        uuid = net.get("uuid")
        if uuid is not None and uuid not in known:
            raise fail(call.surface, 400, f"Network {uuid} could not be found.")


def _tags(call: Call, server: dict[str, object]) -> dict[str, str]:
    raw = server.get("tags")
    if raw is None:
        return {}
    if not call.at_least(2, 52):
        _field(call, "tags")
    if not isinstance(raw, list) or len(raw) > MAX_TAGS:
        _field(call, "tags")
    tags: dict[str, str] = {}
    for tag in raw:
        if not isinstance(tag, str) or not tag or "/" in tag or "," in tag:
            _field(call, "tags")
        key, _, value = str(tag).partition("=")
        tags[key] = value
    return tags


def _metadata(call: Call, server: dict[str, object]) -> tuple[tuple[str, str], ...]:
    """`metadata`: string keys and values of at most 255 characters each (seed 004 §1.4,
    upstream's schema: keys of 1 to 255 characters)."""
    raw = server.get("metadata")
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        _field(call, "metadata")
    items: list[tuple[str, str]] = []
    for key, value in raw.items():
        if not isinstance(value, str) or not 1 <= len(key) <= 255 or len(value) > 255:
            _field(call, "metadata")
        items.append((key, value))
    return tuple(items)


def _counts(call: Call, server: dict[str, object]) -> tuple[int, int]:
    low, high = server.get("min_count", 1), server.get("max_count")
    high = low if high is None else high
    for name, value in (("min_count", low), ("max_count", high)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            _field(call, name)
    if not isinstance(low, int) or not isinstance(high, int):
        _field(call, "min_count")
    if high < low:
        raise fail(call.surface, 400, "min_count must be <= max_count")
    return low, high


def _plan(call: Call, server: dict[str, object]) -> list[provision.NewServer]:
    world = call.ctx.world
    kind = ECS if call.surface.name == "huawei" else OPENSTACK
    name = server.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        _field(call, "name")
    flavor_id, image = server.get("flavorRef"), server.get("imageRef")
    if not isinstance(flavor_id, str) or not flavor_id:
        _field(call, "flavorRef")
    flavor = world.flavors.get(str(flavor_id))
    if flavor is None or flavor.kind != kind:
        raise fail(call.surface, 400, f"Flavor {flavor_id} could not be found.")
    if not isinstance(image, str) or image not in world.catalog.images:
        raise fail(call.surface, 400, "Can not find requested image")
    _networks(call, server)
    zone = server.get("availability_zone") or world.catalog.zones[0]
    if zone not in world.catalog.zones:
        raise fail(call.surface, 400, "The requested availability zone is not available")
    tags = _tags(call, server)
    metadata = _metadata(call, server)
    low, high = _counts(call, server)
    used, quota = provision.room(world, world.catalog, kind, call.project_id)
    if used + low > quota:
        raise fail(
            call.surface,
            403,
            f"Quota exceeded for instances: Requested {low}, but already used {used} "
            f"of {quota} instances",
        )
    count = min(high, quota - used)
    names = [str(name)] if count == 1 else [f"{name}-{i}" for i in range(1, count + 1)]
    return [
        provision.NewServer(
            n, kind, call.project_id, str(flavor_id), image, str(zone), tags, metadata=metadata
        )
        for n in names
    ]


async def create_server(request: web.Request, surface: Surface) -> web.Response:
    """`POST /servers` -> 202 `{"server": {"id", "links", "OS-DCF:diskConfig",
    "security_groups", "adminPass"}}` (the first server when several are created)."""
    call = await open_call(request, surface, "create", action="create")
    data = await read_json(request, surface.dialect)
    server = data.get("server")
    if not isinstance(server, dict):
        raise fail(surface, 400, "Invalid input for field/attribute server.")
    planned = _plan(call, server)
    ids: list[str] = []
    for spec in planned:
        fault = call.ctx.faults.take("create_fail", surface.rate_key("create"))
        if fault is not None:
            spec = replace(spec, fail=("", fault.reason))
        ids.append(provision.create_server(call.ctx.world, spec).id)
    password = server.get("adminPass")
    body = {
        "id": ids[0],
        "links": links(call, "servers", ids[0]),
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": [{"name": "default"}],
        "adminPass": password if isinstance(password, str) else secrets.token_urlsafe(9),
    }
    return web.json_response({"server": body}, status=202)
