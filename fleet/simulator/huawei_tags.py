"""Huawei ECS v1 2D tags: batch create/delete on one server, the tag reads, and query-by-tag.

Create (`{"action": "create", "tags": [{"key", "value"}]}`, seed 001 §5.9.3), checked strictly
with the create rules of digest A-13 and nothing changed unless every tag passes:
- key 1-36 characters, value 0-43 (value is mandatory but may be empty) -> else `Ecs.0906`;
- key of CJK (U+4E00-U+9FFF), A-Z a-z 0-9 `-` `_`; value the same plus `.` -> else `Ecs.0907`;
- a key twice in one request -> `Ecs.0908`; more than 10 tags on the server after the call ->
  `Ecs.0905`;
- idempotent: an existing key/value is a success, a new value for an existing key overwrites it.
Delete (`"action": "delete"`, §5.9.4; key <= 127, value <= 255 characters): a tag that is not
there is a success; a tag given with a non-empty value is deleted only when the stored value is
that value; without a value (or with "") it is deleted by key. Both answer 204 with no body.

Query-by-tag (`POST .../servers/resource_instances/action`, §5.9.2): `action` `filter` or
`count`; `tags` AND across entries, OR across an entry's `values` (none or [] = any value);
`not_tags` drops servers carrying any listed tag (entries may also be bare key strings, A-14);
`matches` on `resource_name` is a case-sensitive substring match (the seed does not say exact or
fuzzy). `limit` and `offset` are strings of digits (limit <= 1000, default 1000; offset default 0)
and are ignored for `count`. Results are in creation order; `total_count` counts every match.

The SDK (huaweicloudsdkecs) sends these calls under `/v1/{project_id}/cloudservers/...` while the
seed writes `/v1/{project_id}/servers/...`: both paths are served.
Rate keys: `huawei-ecs:tags` for create/delete, `huawei-ecs:query` for every read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from fleet.simulator import huawei_iam
from fleet.simulator.core import HUAWEI, admit, ctx_of, json_response, read_json
from fleet.simulator.huawei_jobs import find, reply
from fleet.simulator.world import ECS, Server

MAX_TAGS = 10
_KEY = re.compile(r"[\u4e00-\u9fffA-Za-z0-9_-]+")
_VALUE = re.compile(r"[\u4e00-\u9fffA-Za-z0-9_.-]*")


def tag_items(data: dict[str, object]) -> list[dict[str, object]]:
    items = data.get("tags")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise reply("Ecs.0005", "tags must be a non-empty list of {key, value}")
    keys = [i.get("key") for i in items]
    if len(set(map(str, keys))) != len(keys):
        raise reply("Ecs.0908")
    return items


def _creations(data: dict[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in tag_items(data):
        key, value = item.get("key"), item.get("value")
        if not isinstance(key, str) or not 1 <= len(key) <= 36:
            raise reply("Ecs.0906", "a tag key has 1 to 36 characters")
        if not isinstance(value, str) or len(value) > 43:
            raise reply("Ecs.0906", "a tag value is a string of at most 43 characters")
        if not _KEY.fullmatch(key) or not _VALUE.fullmatch(value):
            raise reply("Ecs.0907")
        out[key] = value
    return out


def _deletions(data: dict[str, object]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in tag_items(data):
        key, value = item.get("key"), item.get("value")
        if not isinstance(key, str) or not 1 <= len(key) <= 127:
            raise reply("Ecs.0906", "a tag key has 1 to 127 characters")
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            raise reply("Ecs.0906", "a tag value is a string of at most 255 characters")
        out[key] = value or None
    return out


def apply_tags(
    server: Server,
    action: object,
    data: dict[str, object],
    *,
    max_tags: int = MAX_TAGS,
    creations: Callable[[dict[str, object]], dict[str, str]] = _creations,
) -> None:
    """Create or delete the tags of `data` on `server` (all or nothing). BMS passes its own tag
    rules and limit (see `huawei_bms_tags`)."""
    if action == "create":
        new = creations(data)
        if len(set(server.tags) | set(new)) > max_tags:
            raise reply("Ecs.0905", f"a server allows at most {max_tags} tags")
        server.tags.update(new)
    elif action == "delete":
        for key, value in _deletions(data).items():
            if key in server.tags and value in (None, server.tags[key]):
                del server.tags[key]
    else:
        raise reply("Ecs.0005", "action must be create or delete")


async def tags_action(
    request: web.Request,
    *,
    rate_key: str,
    kind: str,
    missing: str,
    max_tags: int = MAX_TAGS,
    creations: Callable[[dict[str, object]], dict[str, str]] = _creations,
) -> web.Response:
    """A `.../{server_id}/tags/action` call (create or delete) on a server of `kind`; `missing`
    is the code answered for a server that is not there."""
    ctx = ctx_of(request)
    project_id, server_id = request.match_info["project_id"], request.match_info["server_id"]
    await huawei_iam.authenticate(request, project_id)
    data = await read_json(request, HUAWEI)
    action = data.get("action")
    await admit(
        request,
        dialect=HUAWEI,
        rate_key=rate_key,
        servers=[server_id],
        action=f"tags_{action}" if isinstance(action, str) else "tags",
    )
    server = find(ctx.world, server_id, kind, project_id)
    if server is None:
        raise reply(missing)
    apply_tags(server, action, data, max_tags=max_tags, creations=creations)
    server.updated = ctx.world.clock.now()
    return web.Response(status=204)


async def post_tags_action(request: web.Request) -> web.Response:
    """`POST /v1/{project_id}/servers/{server_id}/tags/action`: batch create or delete."""
    return await tags_action(request, rate_key="huawei-ecs:tags", kind=ECS, missing="Ecs.0614")


def tag_list(server: Server) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in server.tags.items()]


async def get_server_tags(request: web.Request) -> web.Response:
    """`GET /v1/{project_id}/servers/{server_id}/tags` -> `{"tags": [{"key", "value"}]}`."""
    ctx = ctx_of(request)
    project_id, server_id = request.match_info["project_id"], request.match_info["server_id"]
    await huawei_iam.authenticate(request, project_id)
    await admit(
        request, dialect=HUAWEI, rate_key="huawei-ecs:query", servers=[server_id], action="tags"
    )
    server = find(ctx.world, server_id, ECS, project_id)
    if server is None:
        raise reply("Ecs.0614")
    return json_response({"tags": tag_list(server)})


def _live_ecs(request: web.Request, project_id: str) -> list[Server]:
    world = ctx_of(request).world
    return [s for s in world.visible(ECS, project_id) if s.deleted_at is None]


async def get_project_tags(request: web.Request) -> web.Response:
    """`GET /v1/{project_id}/servers/tags` -> `{"tags": [{"key", "values"}]}` over all ECSs."""
    project_id = request.match_info["project_id"]
    await huawei_iam.authenticate(request, project_id)
    await admit(request, dialect=HUAWEI, rate_key="huawei-ecs:query", action="project_tags")
    values: dict[str, list[str]] = {}
    for server in _live_ecs(request, project_id):
        for key, value in server.tags.items():
            seen = values.setdefault(key, [])
            if value not in seen:
                seen.append(value)
    return json_response({"tags": [{"key": k, "values": v} for k, v in values.items()]})


@dataclass(frozen=True)
class TagFilter:
    key: str
    values: frozenset[str]  # empty: any value

    def hit(self, server: Server) -> bool:
        return self.key in server.tags and (not self.values or server.tags[self.key] in self.values)


def _filters(data: dict[str, object], name: str, *, bare_keys: bool) -> list[TagFilter]:
    items = data.get(name, [])
    if not isinstance(items, list):
        raise reply("Ecs.0005", f"{name} must be a list")
    out: list[TagFilter] = []
    for item in items:
        if bare_keys and isinstance(item, str):
            item = {"key": item}
        key = item.get("key") if isinstance(item, dict) else None
        values = item.get("values", []) if isinstance(item, dict) else None
        if not isinstance(key, str) or not 1 <= len(key) <= 127:
            raise reply("Ecs.0005", f"every {name} entry needs a key of 1 to 127 characters")
        if not isinstance(values, list) or not all(
            isinstance(v, str) and len(v) <= 255 for v in values
        ):
            raise reply("Ecs.0005", f"{name}.values must be strings of at most 255 characters")
        if len(set(values)) != len(values):
            raise reply("Ecs.0005", f"values of {name} key {key!r} must be unique")
        out.append(TagFilter(key, frozenset(values)))
    if len({f.key for f in out}) != len(out):
        raise reply("Ecs.0005", f"keys in {name} must be unique")
    return out


def _name_matches(data: dict[str, object]) -> list[str]:
    items = data.get("matches", [])
    if not isinstance(items, list):
        raise reply("Ecs.0005", "matches must be a list")
    out: list[str] = []
    for item in items:
        key = item.get("key") if isinstance(item, dict) else None
        value = item.get("value") if isinstance(item, dict) else None
        if key != "resource_name" or not isinstance(value, str) or not 1 <= len(value) <= 255:
            raise reply("Ecs.0005", "matches: key must be resource_name with a non-empty value")
        out.append(value)
    if len(out) > 1:
        raise reply("Ecs.0005", "matches: the key must be unique")
    return out


def _number(data: dict[str, object], name: str, default: int, maximum: int | None) -> int:
    raw = data.get(name)
    if raw is None:
        return default
    if not isinstance(raw, str) or not raw.isdigit() or not raw.isascii():
        raise reply("Ecs.0005", f'{name} must be a string of digits, e.g. "100"')
    value = int(raw)
    if maximum is not None and value > maximum:
        raise reply("Ecs.0005", f"{name} must be at most {maximum}")
    return value


async def post_resource_instances(request: web.Request) -> web.Response:
    """`POST /v1/{project_id}/servers/resource_instances/action`: filter or count by tag."""
    project_id = request.match_info["project_id"]
    await huawei_iam.authenticate(request, project_id)
    data = await read_json(request, HUAWEI)
    action = data.get("action")
    await admit(
        request,
        dialect=HUAWEI,
        rate_key="huawei-ecs:query",
        action=action if isinstance(action, str) else "query",
    )
    if action not in ("filter", "count"):
        raise reply("Ecs.0005", "action must be filter or count")
    tags = _filters(data, "tags", bare_keys=False)
    not_tags = _filters(data, "not_tags", bare_keys=True)
    names = _name_matches(data)
    hits = [
        s
        for s in _live_ecs(request, project_id)
        if all(f.hit(s) for f in tags)
        and not any(f.hit(s) for f in not_tags)
        and all(n in s.name for n in names)
    ]
    if action == "count":
        return json_response({"total_count": len(hits)})
    limit = _number(data, "limit", 1000, 1000)
    offset = _number(data, "offset", 0, None)
    page = hits[offset : offset + limit]
    resources = [
        {"resource_id": s.id, "resource_detail": None, "tags": tag_list(s), "resource_name": s.name}
        for s in page
    ]
    return json_response({"resources": resources, "total_count": len(hits)})


def setup(app: web.Application) -> None:
    """Register the tag routes under both `servers` (seed) and `cloudservers` (SDK)."""
    r = app.router
    for base in ("/v1/{project_id}/servers", "/v1/{project_id}/cloudservers"):
        r.add_get(f"{base}/tags", get_project_tags)
        r.add_post(f"{base}/resource_instances/action", post_resource_instances)
        r.add_get(f"{base}/{{server_id}}/tags", get_server_tags)
        r.add_post(f"{base}/{{server_id}}/tags/action", post_tags_action)
