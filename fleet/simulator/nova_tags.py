"""Nova 1D tags (`.../servers/{id}/tags[/{tag}]`, microversion >= 2.26): Huawei native, and EasyStack
when its world has the tag API (upstream Nova: at most 50 tags of 60 characters; Huawei: 80).

The world keeps 2D tags (key -> value, as the ECS v1 API manages them); through Nova they surface as
1D strings `"key=value"` (a bare `"key"` when the value is empty), as [S2] describes. BMS and ECS
servers also carry the reserved tag `__type_baremetal` / `__type_virtual` (digest §2.2.3, T6-223):
it is listed and filterable (`?tags=__type_baremetal` selects BMSs) but can never be removed.
Mutations need a settled server (Nova refuses tag changes during a task with 409), and a set that
would need two values for one key is refused with 400, since the 2D model cannot hold it.
"""

from __future__ import annotations

import json

from aiohttp import web

from fleet.simulator.core import json_response, read_json
from fleet.simulator.nova_base import Call, Surface, fail, lookup, open_call
from fleet.simulator.world import BMS, ECS, Server

RESERVED = {BMS: "__type_baremetal", ECS: "__type_virtual"}
MAX_TAGS = 50
_ALLOWED_VM_STATES = ("active", "stopped", "paused", "suspended", "rescued", "shelved")


def reserved_tag(server: Server) -> str | None:
    return RESERVED.get(server.kind)


def one_d(server: Server, *, with_reserved: bool) -> list[str]:
    """The server's tags as Nova 1D strings, the reserved kind tag last (as BMS v1 lists it)."""
    out = one_d_from(server.tags)
    reserved = reserved_tag(server)
    if with_reserved and reserved is not None:
        out.append(reserved)
    return out


def one_d_from(tags: dict[str, str]) -> list[str]:
    """2D tags as 1D strings: `"k=v"`, or a bare `"k"` when the value is empty ([S2])."""
    return [k if v == "" else f"{k}={v}" for k, v in tags.items()]


def split(tag: str) -> tuple[str, str]:
    """`"k=v"` -> ("k", "v"); `"k"` -> ("k", "")."""
    key, _, value = tag.partition("=")
    return key, value


def _validate(surface: Surface, tag: object) -> str:
    if not isinstance(tag, str) or not tag:
        raise fail(surface, 400, "An empty tag cannot be created.")
    if len(tag) > surface.tag_chars:
        raise fail(surface, 400, f"The tag contains a maximum of {surface.tag_chars} characters.")
    if "," in tag or "/" in tag:
        raise fail(surface, 400, f"Tag '{tag}' must not contain ',' or '/'.")
    return tag


def _to_2d(call: Call, server: Server, tags: list[str]) -> dict[str, str]:
    """1D strings -> the 2D dict, dropping the reserved tag; 400 on conflicting keys or too many."""
    reserved = reserved_tag(server)
    result: dict[str, str] = {}
    for tag in tags:
        if tag == reserved:
            continue
        key, value = split(tag)
        if key in result and result[key] != value:
            raise fail(call.surface, 400, f"Tags give two values for the key '{key}'.")
        result[key] = value
    count = len(result) + (1 if reserved is not None else 0)
    if count > MAX_TAGS:
        raise fail(call.surface, 400, f"A maximum of {MAX_TAGS} tags can be added to an ECS.")
    return result


async def _open(request: web.Request, surface: Surface, *, mutate: bool) -> tuple[Call, Server]:
    """Admit and authenticate; the tag API exists only from microversion 2.26 (else 404)."""
    server_id = request.match_info["server_id"]
    call = await open_call(request, surface, "tags", servers=(server_id,))
    if not call.at_least(2, 26):
        raise fail(surface, 404, "The resource could not be found.")
    server = lookup(call, server_id)
    if mutate and (server.busy or server.vm_state not in _ALLOWED_VM_STATES):
        state = f"task_state {server.task_state}" if server.busy else f"vm_state {server.vm_state}"
        raise fail(
            surface,
            409,
            f"Cannot 'update tags' instance {server.id} while it is in {state}",
        )
    return call, server


def _tags_reply(server: Server, status: int = 200) -> web.Response:
    return json_response({"tags": one_d(server, with_reserved=True)}, status=status)


async def get_tags(request: web.Request, surface: Surface) -> web.Response:
    """`GET .../tags`: every 1D tag of the server."""
    _, server = await _open(request, surface, mutate=False)
    return _tags_reply(server)


async def put_tags(request: web.Request, surface: Surface) -> web.Response:
    """`PUT .../tags {"tags": [...]}`: replace the whole set (the reserved tag stays)."""
    call, server = await _open(request, surface, mutate=True)
    body = await read_json(request, surface.dialect)
    tags = body.get("tags")
    if not isinstance(tags, list):
        raise fail(surface, 400, "Invalid input for field/attribute tags.")
    checked = [_validate(surface, t) for t in tags]
    server.tags = _to_2d(call, server, checked)
    server.updated = call.ctx.world.clock.now()
    return _tags_reply(server)


async def delete_tags(request: web.Request, surface: Surface) -> web.Response:
    """`DELETE .../tags`: remove every tag except the reserved one."""
    call, server = await _open(request, surface, mutate=True)
    server.tags = {}
    server.updated = call.ctx.world.clock.now()
    return web.Response(status=204)


def _created(request: web.Request) -> web.Response:
    """201 as the seed shows it: webob's HTML page, or its JSON form when JSON is accepted."""
    if "json" in request.headers.get("Accept", ""):
        body = {"message": "<br /><br />\n\n\n", "code": "201 Created", "title": "Created"}
        return web.Response(status=201, text=json.dumps(body), content_type="application/json")
    html = (
        "<html>\n <head>\n  <title>201 Created</title>\n </head>\n <body>\n"
        "  <h1>201 Created</h1>\n  <br /><br />\n\n\n\n </body>\n</html>"
    )
    return web.Response(status=201, text=html, content_type="text/html")


async def put_tag(request: web.Request, surface: Surface) -> web.Response:
    """`PUT .../tags/{tag}`: add one tag (201), or 204 if it is already there."""
    call, server = await _open(request, surface, mutate=True)
    tag = _validate(surface, request.match_info["tag"])
    if tag in one_d(server, with_reserved=True):
        return web.Response(status=204)
    key, value = split(tag)
    server.tags = _to_2d(call, server, one_d_from({**server.tags, key: value}))
    server.updated = call.ctx.world.clock.now()
    response = _created(request)
    response.headers["Location"] = str(request.url)
    return response


async def get_tag(request: web.Request, surface: Surface) -> web.Response:
    """`GET .../tags/{tag}`: 204 if the server has it, else 404."""
    _, server = await _open(request, surface, mutate=False)
    if request.match_info["tag"] not in one_d(server, with_reserved=True):
        raise fail(surface, 404, f"Tag {request.match_info['tag']} could not be found.")
    return web.Response(status=204)


async def delete_tag(request: web.Request, surface: Surface) -> web.Response:
    """`DELETE .../tags/{tag}`: 204, 404 if absent, 400 for the reserved tag."""
    call, server = await _open(request, surface, mutate=True)
    tag = request.match_info["tag"]
    if tag == reserved_tag(server):
        raise fail(surface, 400, f"Tag {tag} is reserved by the system and cannot be deleted.")
    key, value = split(tag)
    if server.tags.get(key) != value:
        raise fail(surface, 404, f"Tag {tag} could not be found.")
    del server.tags[key]
    server.updated = call.ctx.world.clock.now()
    return web.Response(status=204)
