"""Huawei BMS v1 server tags: batch create/delete on one BMS and the read of its tags.

The seeds give no BMS tag API; the URIs and bodies are the official SDK's (huaweicloudsdkbms v1):
- `POST /v1/{project_id}/baremetalservers/{server_id}/tags/action` with
  `{"action": "create"|"delete", "tags": [{"key", "value"}]}` (BatchCreate/BatchDelete
  BaremetalServerTagsRequestBody, `BaremetalServerTag`); both answer with an empty body (their
  response models have no field), here 204 as ECS's same call (seed 001 §5.9.3).
- `GET /v1/{project_id}/baremetalservers/{server_id}/tags` answers `{"tags": [{"key", "value"}]}`
  (ShowBaremetalServerTagsResponse): the BMS's own tags, without the system tag
  `__type_baremetal` (that one is not a key/value tag the user set; the detail list shows it).

Create rules are seed 003's for a BMS's `server_tags` (digest §3.3), checked before anything
changes: a key has 1-36 characters, a value 0-43 (`Ecs.0906` otherwise); neither contains ASCII
control characters or any of `=*<>\\,|/` (`Ecs.0907`); a key twice in one request is `Ecs.0908`;
"A maximum of 10 tags can be added to a BMS. `__type_baremetal` is an internal tag of the
system. Therefore, you can add a maximum of nine tags": a tenth user tag is `Ecs.0905`, and the
reserved key itself is refused (`Ecs.0907`). Create and delete are otherwise ECS's, shared with
`huawei_tags`: creating an existing key overwrites its value, deleting a tag that is not there
succeeds, a delete with a non-empty value removes the tag only when the value matches. The BMS
error codes are in neither the seeds nor the SDK: the ECS codes of the same meaning are used, as
in `huawei_bms` (unknown id: 404 `Ecs.0114`).

Rate keys (Table 2 of seed 000 lists no tag API, so none is limited by default):
`huawei-bms:tags` for create/delete, `huawei-bms:query` for the read.
"""

from __future__ import annotations

import re

from aiohttp import web

from fleet.simulator import huawei_iam, huawei_tags
from fleet.simulator.core import HUAWEI, admit, ctx_of, json_response
from fleet.simulator.huawei_jobs import find, reply
from fleet.simulator.world import BMS

SYSTEM_TAG = "__type_baremetal"
MAX_USER_TAGS = 9
_FORBIDDEN = re.compile(r"[\x00-\x1f=*<>\\,|/]")


def _creations(data: dict[str, object]) -> dict[str, str]:
    """The key -> value pairs of a create body, checked against seed 003's BMS tag rules."""
    out: dict[str, str] = {}
    for item in huawei_tags.tag_items(data):
        key, value = item.get("key"), item.get("value", "")
        if not isinstance(key, str) or not 1 <= len(key) <= 36:
            raise reply("Ecs.0906", "a BMS tag key has 1 to 36 characters")
        if not isinstance(value, str) or len(value) > 43:
            raise reply("Ecs.0906", "a BMS tag value is a string of at most 43 characters")
        if _FORBIDDEN.search(key) or _FORBIDDEN.search(value):
            raise reply("Ecs.0907", "tags cannot contain control characters or =*<>\\,|/")
        if key == SYSTEM_TAG:
            raise reply("Ecs.0907", f"{SYSTEM_TAG} is a system tag")
        out[key] = value
    return out


async def post_tags_action(request: web.Request) -> web.Response:
    """`POST /v1/{project_id}/baremetalservers/{server_id}/tags/action`: create or delete."""
    return await huawei_tags.tags_action(
        request,
        rate_key="huawei-bms:tags",
        kind=BMS,
        missing="Ecs.0114",
        max_tags=MAX_USER_TAGS,
        creations=_creations,
    )


async def get_tags(request: web.Request) -> web.Response:
    """`GET /v1/{project_id}/baremetalservers/{server_id}/tags` -> `{"tags": [{"key", "value"}]}`."""
    ctx = ctx_of(request)
    project_id, server_id = request.match_info["project_id"], request.match_info["server_id"]
    await huawei_iam.authenticate(request, project_id)
    await admit(
        request, dialect=HUAWEI, rate_key="huawei-bms:query", servers=[server_id], action="tags"
    )
    server = find(ctx.world, server_id, BMS, project_id)
    if server is None:
        raise reply("Ecs.0114")
    return json_response({"tags": huawei_tags.tag_list(server)})


def setup(app: web.Application) -> None:
    """Register the BMS tag routes."""
    base = "/v1/{project_id}/baremetalservers/{server_id}/tags"
    app.router.add_get(base, get_tags)
    app.router.add_post(f"{base}/action", post_tags_action)
