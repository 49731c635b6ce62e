"""`os-instance-actions` on both Nova mounts: a server's history, as the world recorded it.

- `GET .../servers/{server_id}/os-instance-actions` -> `{"instanceActions": [...]}`, newest
  first, each with `action`, `instance_uuid`, `message`, `project_id`, `request_id`,
  `start_time`, `user_id` (ECS API reference §6.13.1, upstream Nova).
- `GET .../servers/{server_id}/os-instance-actions/{request_id}` -> `{"instanceAction": {...,
  "events": [...]}}` (§6.13.2), events with `event`, `start_time`, `finish_time`, `result`,
  `traceback`.

Upstream microversions: 2.21 shows the actions of deleted servers (before it, Nova's 404); 2.51
shows events to non-admins (the simulator's users are their project's administrators, so events
always show, tracebacks included); 2.58 adds `updated_at`, the `limit`/`marker` paging (marker: a
request id; unknown: 400) with a `links` `next` entry on a full page, and the `changes-since`
filter on `updated_at`; 2.62 adds the events' `host` and `hostId`; 2.66 `changes-before`; 2.84
the events' `details`. Times are Nova's `YYYY-MM-DDTHH:MM:SS.ffffff` in the cloud's clock.
Unknown server: 404 "Instance ... could not be found."; unknown request id: 404 "Action for
request_id ... on instance ... not found", both in the surface's error shape.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from aiohttp import web

from fleet.simulator.core import json_response
from fleet.simulator.instance_actions import ActionEvent, InstanceAction
from fleet.simulator.nova_base import MAX_PAGE, Call, Surface, fail, gone, open_call, owned
from fleet.simulator.nova_views import host_id, host_of


def stamp(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _history(call: Call, server_id: str) -> list[InstanceAction]:
    """The caller's server's actions (oldest first), or Nova's 404."""
    world = call.ctx.world
    server = world.servers.get(server_id)
    records = world.actions.of(server_id)
    if server is not None:
        visible = owned(call, server) and (call.at_least(2, 21) or not gone(call, server))
    else:  # purged: only its records remain, shown from 2.21
        visible = bool(records) and call.at_least(2, 21)
        visible = visible and records[0].project_id == call.project_id
    if not visible:
        raise fail(call.surface, 404, f"Instance {server_id} could not be found.")
    return records


def _event_body(call: Call, record: InstanceAction, event: ActionEvent) -> dict[str, object]:
    body: dict[str, object] = {
        "event": event.event,
        "start_time": stamp(event.start_time),
        "finish_time": stamp(event.finish_time),
        "result": event.result,
        "traceback": event.traceback,
    }
    if call.at_least(2, 62):
        host = host_of(record.server_id)
        body["host"] = host
        body["hostId"] = host_id(record.project_id, host)
    if call.at_least(2, 84):
        body["details"] = None
    return body


def action_body(call: Call, record: InstanceAction, *, events: bool) -> dict[str, object]:
    body: dict[str, object] = {
        "action": record.action,
        "instance_uuid": record.server_id,
        "message": record.message,
        "project_id": record.project_id,
        "request_id": record.request_id,
        "start_time": stamp(record.start_time),
        "user_id": record.user_id,
    }
    if call.at_least(2, 58):
        body["updated_at"] = stamp(record.updated_at)
    if events:
        body["events"] = [_event_body(call, record, e) for e in record.events]
    return body


def _moment(call: Call, name: str) -> datetime | None:
    raw = call.request.query.get(name)
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw.strip().replace(" ", "+"))
    except ValueError:
        raise fail(
            call.surface, 400, f"Invalid input for query parameters {name}. Value: {raw}."
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _limit(call: Call) -> int:
    raw = call.request.query.get("limit")
    if raw is None:
        return MAX_PAGE
    if not raw.isdigit():
        raise fail(call.surface, 400, f"Invalid input for query parameters limit. Value: {raw}.")
    return min(int(raw) or MAX_PAGE, MAX_PAGE)


def _filtered(call: Call, newest_first: list[InstanceAction]) -> list[InstanceAction]:
    since = _moment(call, "changes-since")
    before = _moment(call, "changes-before") if call.at_least(2, 66) else None
    return [
        r
        for r in newest_first
        if (since is None or r.updated_at >= since) and (before is None or r.updated_at <= before)
    ]


def _page(call: Call, items: list[InstanceAction]) -> tuple[list[InstanceAction], list[object]]:
    """2.58+: one page after `marker` (a request id) and the `next` link of a full page."""
    limit = _limit(call)
    marker = call.request.query.get("marker")
    start = 0
    if marker is not None:
        ids = [r.request_id for r in items]
        if marker not in ids:
            raise fail(call.surface, 400, f"Marker {marker} could not be found.")
        start = ids.index(marker) + 1
    page = items[start : start + limit]
    if not page or len(page) < limit:
        return page, []
    params = [(k, v) for k, v in call.request.query.items() if k not in ("marker", "limit")]
    params += [("limit", str(limit)), ("marker", page[-1].request_id)]
    return page, [{"rel": "next", "href": f"{call.base}{call.request.path}?{urlencode(params)}"}]


async def list_actions(request: web.Request, surface: Surface) -> web.Response:
    """`GET /servers/{id}/os-instance-actions`: the server's actions, newest first."""
    server_id = request.match_info["server_id"]
    call = await open_call(request, surface, "instance-actions", servers=(server_id,))
    newest_first = list(reversed(_history(call, server_id)))
    links: list[object] = []
    if call.at_least(2, 58):
        newest_first, links = _page(call, _filtered(call, newest_first))
    body: dict[str, object] = {
        "instanceActions": [action_body(call, r, events=False) for r in newest_first]
    }
    if links:
        body["links"] = links
    return json_response(body)


async def show_action(request: web.Request, surface: Surface) -> web.Response:
    """`GET /servers/{id}/os-instance-actions/{request_id}`: one action with its events."""
    server_id, request_id = request.match_info["server_id"], request.match_info["request_id"]
    call = await open_call(request, surface, "instance-actions", servers=(server_id,))
    _history(call, server_id)
    record = call.ctx.world.actions.find(server_id, request_id)
    if record is None:
        raise fail(
            surface,
            404,
            f"Action for request_id {request_id} on instance {server_id} not found",
        )
    return json_response({"instanceAction": action_body(call, record, events=True)})
