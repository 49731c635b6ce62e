"""Per-server actions (`POST /servers/{id}/action`) and `DELETE /servers/{id}`.

Transitions follow the digest's Table A-4 and EasyStack's pre/post-conditions (§2.5, §3.2, §3.4):
stop ACTIVE + `powering-off` -> SHUTOFF; start SHUTOFF + `powering-on` -> ACTIVE; reboot REBOOT /
HARD_REBOOT -> ACTIVE; resize RESIZE (`resize_prep`) -> VERIFY_RESIZE (vm_state `resized`, the old
flavor kept) -> `confirmResize` -> ACTIVE or SHUTOFF as before / `revertResize` -> REVERT_RESIZE
(`resize_reverting`) -> the old flavor; EasyStack `live_resize` (ACTIVE only) -> ACTIVE with the new
flavor; delete `deleting` -> gone (Huawei) or DELETED in the recycle bin (EasyStack, with `restore`
and `forceDelete`). A state precondition that fails is Nova's 409 "Cannot '<action>' instance ...
while it is in vm_state ...", as are a task in progress and a locked server. Actions answer 202
with no body, DELETE 204.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from fleet.simulator.core import entry_of, read_json
from fleet.simulator.nova_base import Call, Surface, fail, lookup, open_call
from fleet.simulator.world import BMS, RUNNING, STOPPED, Server

ActionFn = Callable[[Call, Server, object], None]
_REBOOT_TYPES = ("HARD", "Hard", "hard", "SOFT", "Soft", "soft")
_DELETED = ("DELETED", "deleted", 0)


def _conflict(call: Call, server: Server, action: str) -> None:
    """409 unless the server is settled, unlocked and not in the recycle bin."""
    if server.locked and action not in ("lock", "unlock"):
        raise fail(call.surface, 409, f"Instance {server.id} is locked")
    if server.busy:
        raise fail(
            call.surface,
            409,
            f"Cannot '{action}' instance {server.id} while it is in task_state {server.task_state}",
        )
    if server.deleted_at is not None and action not in ("restore", "forceDelete"):
        _wrong_state(call, server, action)


def _wrong_state(call: Call, server: Server, action: str) -> None:
    raise fail(
        call.surface,
        409,
        f"Cannot '{action}' instance {server.id} while it is in vm_state {server.vm_state}",
    )


def _need(call: Call, server: Server, action: str, *statuses: str) -> None:
    if server.status not in statuses:
        _wrong_state(call, server, action)


def _settled(server: Server) -> tuple[str, str, int]:
    """Where a server goes back to after a resize: running or stopped, as it was."""
    return RUNNING if server.power_state == RUNNING[2] else STOPPED


def _start(call: Call, server: Server, _value: object) -> None:
    _need(call, server, "start", "SHUTOFF")
    call.ctx.world.begin(server, "start", interim=("SHUTOFF", "powering-on"), end=RUNNING)


def _stop(call: Call, server: Server, value: object) -> None:
    """Huawei honours `{"type": "HARD"}`; EasyStack's `os-stop` has no type (digest §3.4)."""
    hard = False
    if call.surface.huawei and isinstance(value, dict) and "type" in value:
        kind = value["type"]
        if kind not in ("SOFT", "HARD"):
            raise fail(call.surface, 400, "Invalid input for field/attribute type.")
        hard = kind == "HARD"
    _need(call, server, "stop", "ACTIVE")
    action = "stop_hard" if hard else "stop"
    call.ctx.world.begin(server, action, interim=("ACTIVE", "powering-off"), end=STOPPED)


def _reboot(call: Call, server: Server, value: object) -> None:
    """SOFT needs ACTIVE; HARD also starts a stopped server (Nova's ALLOW_HARD_REBOOT)."""
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in _REBOOT_TYPES:
        raise fail(call.surface, 400, "Invalid input for field/attribute type.")
    world = call.ctx.world
    if str(kind).upper() == "SOFT":
        _need(call, server, "reboot", "ACTIVE")
        world.begin(server, "reboot", interim=("REBOOT", "reboot_started"), end=RUNNING)
        return
    _need(call, server, "reboot", "ACTIVE", "SHUTOFF")
    interim = "HARD_REBOOT" if server.status == "ACTIVE" else "SHUTOFF"
    world.begin(server, "reboot_hard", interim=(interim, "reboot_started_hard"), end=RUNNING)


def _target_flavor(call: Call, server: Server, value: object) -> str:
    """`flavorRef` (an id or a URL ending in the id): known, same kind, and a change."""
    ref = value.get("flavorRef") if isinstance(value, dict) else None
    if not isinstance(ref, str) or not ref:
        raise fail(call.surface, 400, "Invalid input for field/attribute flavorRef.")
    flavor_id = ref.rstrip("/").rsplit("/", 1)[-1]
    flavor = call.ctx.world.flavors.get(flavor_id)
    if flavor is None or flavor.kind != server.kind:
        raise fail(call.surface, 400, f"Flavor {flavor_id} could not be found.")
    if flavor_id == server.flavor_id:
        raise fail(call.surface, 400, "When resizing, instances must change flavor!")
    return flavor_id


def _resize(call: Call, server: Server, value: object) -> None:
    if server.kind == BMS:
        raise fail(call.surface, 400, "Bare metal servers cannot be resized.")
    flavor_id = _target_flavor(call, server, value)
    _need(call, server, "resize", "ACTIVE", "SHUTOFF")
    call.ctx.world.begin(
        server,
        "resize",
        interim=("RESIZE", "resize_prep"),
        end=("VERIFY_RESIZE", "resized", server.power_state),
        flavor_id=flavor_id,
        old_flavor_id=server.flavor_id,
    )


def _confirm(call: Call, server: Server, _value: object) -> None:
    _need(call, server, "confirmResize", "VERIFY_RESIZE")
    call.ctx.world.begin(
        server, "confirm_resize", interim=("VERIFY_RESIZE", None), end=_settled(server)
    )


def _revert(call: Call, server: Server, _value: object) -> None:
    _need(call, server, "revertResize", "VERIFY_RESIZE")
    call.ctx.world.begin(
        server,
        "revert_resize",
        interim=("REVERT_RESIZE", "resize_reverting"),
        end=_settled(server),
        flavor_id=server.old_flavor_id,
    )


def _live_resize(call: Call, server: Server, value: object) -> None:
    flavor_id = _target_flavor(call, server, value)
    _need(call, server, "live_resize", "ACTIVE")
    call.ctx.world.begin(
        server, "live_resize", interim=("RESIZE", "resize_prep"), end=RUNNING, flavor_id=flavor_id
    )


def _lock(call: Call, server: Server, _value: object) -> None:
    server.locked = True
    call.ctx.world.record(server, "lock", finished=True)


def _unlock(call: Call, server: Server, _value: object) -> None:
    server.locked = False
    call.ctx.world.record(server, "unlock", finished=True)


def _restore(call: Call, server: Server, _value: object) -> None:
    """EasyStack: out of the recycle bin, powered on again (Nova's `restore`)."""
    if server.deleted_at is None:
        _wrong_state(call, server, "restore")
    server.deleted_at = None
    call.ctx.world.begin(server, "restore", interim=("DELETED", "restoring"), end=RUNNING)


def _force_delete(call: Call, server: Server, _value: object) -> None:
    """EasyStack: purge a recycled server for good."""
    if server.deleted_at is None:
        _wrong_state(call, server, "forceDelete")
    world = call.ctx.world
    world.record(server, "delete", finished=True)  # Nova records a force delete as `delete`
    world.servers.pop(server.id, None)
    world.failing.pop(server.id, None)


_COMMON: dict[str, ActionFn] = {
    "os-start": _start,
    "os-stop": _stop,
    "reboot": _reboot,
    "resize": _resize,
    "confirmResize": _confirm,
    "revertResize": _revert,
    "lock": _lock,
    "unlock": _unlock,
}
_EASYSTACK: dict[str, ActionFn] = {
    "live_resize": _live_resize,
    "restore": _restore,
    "forceDelete": _force_delete,
}


def actions_of(surface: Surface) -> dict[str, ActionFn]:
    return {**_COMMON, **_EASYSTACK} if surface.live_resize else dict(_COMMON)


async def post_action(request: web.Request, surface: Surface) -> web.Response:
    """`POST /servers/{id}/action {"<action>": ...}` -> 202, no body."""
    server_id = request.match_info["server_id"]
    call = await open_call(request, surface, "action", servers=(server_id,))
    body = await read_json(request, surface.dialect)
    table = actions_of(surface)
    names = [k for k in body if k in table]
    if len(body) != 1 or not names:
        shown = next(iter(body), "")
        raise fail(surface, 400, f"There is no such action: {shown}")
    name = names[0]
    entry_of(request)["action"] = name
    server = lookup(call, server_id)
    _conflict(call, server, name)
    table[name](call, server, body[name])
    return web.Response(status=202)


async def delete_server(request: web.Request, surface: Surface) -> web.Response:
    """`DELETE /servers/{id}` -> 204; repeated while deleting or once recycled: a no-op."""
    server_id = request.match_info["server_id"]
    call = await open_call(request, surface, "delete", servers=(server_id,), action="delete")
    server = lookup(call, server_id)
    in_progress = server.transition is not None and server.transition.action == "delete"
    if in_progress or server.deleted_at is not None:
        return web.Response(status=204)
    _conflict(call, server, "delete")
    call.ctx.world.begin(server, "delete", interim=(server.status, "deleting"), end=_DELETED)
    return web.Response(status=204)
