"""Huawei creates: ECS `POST /v1/{project_id}/cloudservers`, `POST /v1.1/{project_id}/cloudservers`
and BMS `POST /v1/{project_id}/baremetalservers`, each answered with a job.

Sources. ECS v1: seed 001 §5.1.1 (Table 5-3: `imageRef`, `flavorRef`, `name`, `vpcid`, `nics`
[`subnet_id`], `root_volume` [`volumetype`] are mandatory; `availability_zone` optional ("the
system automatically selects an AZ"); `count` default 1, at most 500; `dry_run` true checks the
request and answers 202; names of 1-128 letters, digits, `_`, `-`, `.`, and with `count` > 1 the
cloud appends `-0001`, `-0002`, ... and the name may have at most 59 characters), the digest's job
document (§4.1, job type `createServer`, sub-jobs `createSingleServer`, one per server) and error
codes (Appendix A). The answer `{"job_id", "serverIds"}` is huaweicloudsdkecs
`CreatePostPaidServersResponse`. ECS v1.1: huaweicloudsdkecs `CreateServersRequestBody` /
`PrePaidServer` (same fields; `extendparam.chargingMode` `prePaid` also gets an `order_id`, as
`CreateServersResponse` has one). BMS: seed 003 (mandatory `imageRef`, `flavorRef`, `name` of at
most 63 characters (58 with `count` > 1), `metadata.op_svc_userid`, `nics` (at most two),
`availability_zone`, `vpcid`, `extendparam`; `count` at most 24; answer `{"order_id", "job_id"}`)
and huaweicloudsdkbms `CreateServers` (`server_tags` as a list of `{key, value}`; the seed's map
form is accepted too). Seed 003 documents no `dry_run` for BMS and no BMS error codes: the ECS
codes of the same meaning are answered, as for every other BMS call.

Errors (400 unless noted, `{"error": {"code", "message"}}`): malformed body or field `Ecs.0005`
naming the field; unknown flavor (or one of the other kind) `Ecs.0029`; unknown image
`Ecs.0031`; unknown subnet `Ecs.0038`; a subnet outside `vpcid` `Ecs.0064`; `count` above the
maximum `Ecs.0118`; not enough quota for `count` more servers `Ecs.0001`; tags as the tag API
(`Ecs.0905` too many, `Ecs.0906` bad characters, `Ecs.0908` duplicate key). Rate keys:
`huawei-ecs:create` (v1 and v1.1; no documented limit) and `huawei-bms:create` (50 requests per
minute, seed 000 Table 2).

Idempotency (ECS only): huaweicloudsdkecs's create requests carry an optional `X-Client-Token`
header, "an identifier that guarantees the idempotency of the client's request". A create
repeated with a token the project already used answers the first call's answer again (same
`job_id` and `serverIds`) and creates nothing; the simulator keeps tokens for the world's life
(how long the cloud keeps them is not documented).
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, replace

from aiohttp import web

from fleet.simulator import huawei_iam, huawei_jobs, provision
from fleet.simulator.core import HUAWEI, admit, ctx_of, json_response, read_json
from fleet.simulator.huawei_jobs import reply
from fleet.simulator.world import BMS, ECS, SubJob, World

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_TAG_BAD = re.compile(r"[\x00-\x1f=*<>\\,|/]")


@dataclass(frozen=True)
class Rules:
    kind: str
    rate_key: str
    max_count: int
    max_name: int
    max_batch_name: int
    max_nics: int
    max_tags: int
    job_type: str
    needs: tuple[str, ...]  # mandatory fields of `server` beyond the common ones


ECS_RULES = Rules(ECS, "huawei-ecs:create", 500, 128, 59, 12, 10, "createServer", ("root_volume",))
BMS_RULES = Rules(
    BMS,
    "huawei-bms:create",
    24,
    63,
    58,
    2,
    9,
    "createBaremetalServers",
    ("availability_zone", "metadata", "extendparam"),
)


def _str(server: dict[str, object], key: str) -> str:
    value = server.get(key)
    if not isinstance(value, str) or not value:
        raise reply("Ecs.0005", f"server.{key} is required (a non-empty string)")
    return value


def _count(server: dict[str, object], rules: Rules) -> int:
    count = server.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise reply("Ecs.0005", "server.count must be an integer of at least 1")
    if count > rules.max_count:
        raise reply("Ecs.0118", f"server.count is at most {rules.max_count}")
    return count


def _name(server: dict[str, object], rules: Rules, count: int) -> str:
    name = _str(server, "name")
    longest = rules.max_name if count == 1 else rules.max_batch_name
    if len(name) > longest or not _NAME.match(name):
        raise reply(
            "Ecs.0005",
            f"server.name must be 1 to {longest} letters, digits, '_', '-' or '.'",
        )
    return name


def _network(world: World, server: dict[str, object], rules: Rules) -> None:
    vpc = _str(server, "vpcid")
    nics = server.get("nics")
    if not isinstance(nics, list) or not nics or len(nics) > rules.max_nics:
        raise reply("Ecs.0005", f"server.nics must list 1 to {rules.max_nics} {{subnet_id}}")
    for nic in nics:
        subnet = nic.get("subnet_id") if isinstance(nic, dict) else None
        if not isinstance(subnet, str) or not subnet:
            raise reply("Ecs.0005", "server.nics[].subnet_id is required")
        if subnet not in world.catalog.subnets:
            raise reply("Ecs.0038", subnet)
        if world.catalog.subnets[subnet] != vpc:
            raise reply("Ecs.0064", f"subnet {subnet} is not in VPC {vpc}")


def _zone(world: World, server: dict[str, object]) -> str:
    zone = server.get("availability_zone")
    if zone is None:
        return world.catalog.zones[0]
    if not isinstance(zone, str) or zone not in world.catalog.zones:
        raise reply("Ecs.0005", f"server.availability_zone {zone!r} does not exist")
    return zone


def _tags(server: dict[str, object], rules: Rules) -> dict[str, str]:
    raw = server.get("server_tags", [])
    if isinstance(raw, dict) and rules.kind == BMS:
        raw = [{"key": k, "value": v} for k, v in raw.items()]
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise reply("Ecs.0005", "server.server_tags must be a list of {key, value}")
    if len(raw) > rules.max_tags:
        raise reply("Ecs.0905", f"at most {rules.max_tags} tags")
    tags: dict[str, str] = {}
    for item in raw:
        key, value = item.get("key"), item.get("value", "")
        if not isinstance(key, str) or not isinstance(value, str):
            raise reply("Ecs.0005", "server.server_tags[].key and value must be strings")
        if not 1 <= len(key) <= 36 or len(value) > 43 or _TAG_BAD.search(key + value):
            raise reply("Ecs.0906", f"tag {key!r}")
        if key in tags:
            raise reply("Ecs.0908", key)
        tags[key] = value
    return tags


def _required(server: dict[str, object], rules: Rules) -> None:
    for key in rules.needs:
        if key == "availability_zone":
            _str(server, key)
        elif not isinstance(server.get(key), dict):
            raise reply("Ecs.0005", f"server.{key} is required (an object)")
    if rules.kind == ECS:
        root = server["root_volume"]
        if not isinstance(root, dict) or not isinstance(root.get("volumetype"), str):
            raise reply("Ecs.0005", "server.root_volume.volumetype is required")
    if rules.kind == BMS:
        meta = server["metadata"]
        if not isinstance(meta, dict) or not isinstance(meta.get("op_svc_userid"), str):
            raise reply("Ecs.0005", "server.metadata.op_svc_userid is required")


def _plan(
    world: World, server: dict[str, object], rules: Rules, project_id: str
) -> list[provision.NewServer]:
    """Validate the `server` object; the servers it asks for (before quota and faults)."""
    _required(server, rules)
    count = _count(server, rules)
    name = _name(server, rules, count)
    image = _str(server, "imageRef")
    flavor_id = _str(server, "flavorRef")
    flavor = world.flavors.get(flavor_id)
    if flavor is None or flavor.kind != rules.kind:
        raise reply("Ecs.0029", flavor_id)
    if image not in world.catalog.images:
        raise reply("Ecs.0031", image)
    _network(world, server, rules)
    zone, tags = _zone(world, server), _tags(server, rules)
    used, quota = provision.room(world, world.catalog, rules.kind, project_id)
    if used + count > quota:
        raise reply("Ecs.0001", f"{count} more requested, {used} of {quota} used")
    return [
        provision.NewServer(n, rules.kind, project_id, flavor_id, image, zone, tags)
        for n in provision.batch_names(name, count)
    ]


def _order_id() -> str:
    return (
        "CS"
        + "".join(random.choices(string.digits, k=10))
        + "".join(random.choices(string.ascii_uppercase, k=5))
    )


async def _create(request: web.Request, rules: Rules, *, v11: bool = False) -> web.Response:
    ctx = ctx_of(request)
    world = ctx.world
    project_id = request.match_info["project_id"]
    await huawei_iam.authenticate(request, project_id)
    data = await read_json(request, HUAWEI)
    await admit(request, dialect=HUAWEI, rate_key=rules.rate_key, action="create")
    server = data.get("server")
    if not isinstance(server, dict):
        raise reply("Ecs.0005", "server is required (an object)")
    dry_run = data.get("dry_run", False)
    if not isinstance(dry_run, bool) or (dry_run and rules.kind == BMS):
        raise reply("Ecs.0005", "dry_run must be a boolean (ECS only)")
    token = request.headers.get("X-Client-Token") if rules.kind == ECS else None
    if token and (project_id, token) in world.client_tokens:
        return json_response(world.client_tokens[(project_id, token)])
    planned = _plan(world, server, rules, project_id)
    if dry_run:
        return web.Response(status=202)
    parts: list[SubJob] = []
    for spec in planned:
        fault = ctx.faults.take("create_fail", rules.rate_key)
        if fault is not None:
            spec = replace(spec, fail=(fault.error_code, fault.reason))
        created = provision.create_server(world, spec)
        t = created.transition
        done = t.done_at if t is not None else world.clock.seconds()
        parts.append(SubJob(huawei_jobs.hex_id(), created.id, done, spec.fail))
    job = world.new_job(rules.job_type, rules.kind, project_id, parts)
    if rules.kind == BMS:
        return json_response({"order_id": _order_id(), "job_id": job.id})
    body: dict[str, object] = {"job_id": job.id, "serverIds": [p.server_id for p in parts]}
    extend = server.get("extendparam")
    if v11 and isinstance(extend, dict) and extend.get("chargingMode") in ("prePaid", 0, "0"):
        body["order_id"] = _order_id()
    if token:
        world.client_tokens[(project_id, token)] = body
    return json_response(body)


async def post_ecs(request: web.Request) -> web.Response:
    """`POST /v1/{project_id}/cloudservers` (SDK `create_post_paid_servers`)."""
    return await _create(request, ECS_RULES)


async def post_ecs_v11(request: web.Request) -> web.Response:
    """`POST /v1.1/{project_id}/cloudservers` (SDK `create_servers`)."""
    return await _create(request, ECS_RULES, v11=True)


async def post_bms(request: web.Request) -> web.Response:
    """`POST /v1/{project_id}/baremetalservers` (SDK `create_bare_metal_servers`)."""
    return await _create(request, BMS_RULES)


def setup(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/{project_id}/cloudservers", post_ecs)
    r.add_post("/v1.1/{project_id}/cloudservers", post_ecs_v11)
    r.add_post("/v1/{project_id}/baremetalservers", post_bms)
