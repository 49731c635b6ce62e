"""`GET /v1/operations/{id}/events`: server-sent events until the operation ends.

Events (each `data:` is one JSON object):
- `state`: the operation's state changed (sent first, with the state at connection time);
- `progress`: counts by state, progress and ETA changed;
- `subjob`: a sub-job failed (target, code, message), so a watcher sees failures as they happen;
- `waiting`: why planning waits changed (`{"id", "waiting": [...]}` as in the operation's
  `waiting`; an empty list once it goes on);
- `end`: the operation is over (its final view); the server then closes the stream.

The stream reads the store's append-only event history (the SSE `id` is the last history id, so
a client reconnecting with `Last-Event-ID` skips what it saw) and the operation's counts, every
`stream_interval` seconds. A comment line keeps idle connections open through proxies. The stream
stops early, cleanly, when the service shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from fleet.api.context import CONFIG, STOPPING, fleet_of, read_query
from fleet.api.errors import field_problem
from fleet.api.schemas import EventsQuery, OperationOut
from fleet.api.views import operation_out
from fleet.service import Fleet
from jobs.records import EventRecord, OperationView
from jobs.states import FINISHED_OPERATIONS, State


def _resume_after(request: web.Request) -> int:
    q = read_query(request, EventsQuery)
    header = request.headers.get("Last-Event-ID")
    if header is not None:
        if not header.isdigit() or len(header) > 18:
            raise field_problem("Last-Event-ID", "must be an event id this server sent")
        return int(header)
    return q.after or 0


def _frame(event: str, data: str, event_id: int | None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


def _failure(event: EventRecord) -> str:
    return json.dumps(
        {
            "subjob_id": event.subjob_id,
            "target_id": event.target_id,
            "code": event.code,
            "message": event.message,
            "at": event.at.isoformat(),
        }
    )


class _Stream:
    """One client's stream: what it has been told so far."""

    def __init__(
        self, response: web.StreamResponse, fleet: Fleet, last_id: int, keepalive: float
    ) -> None:
        self.response = response
        self.keepalive = keepalive
        self.fleet = fleet
        self.last_id = last_id
        self.state: str | None = None
        self.progress: tuple[object, ...] | None = None
        self.waiting: str = "[]"

    async def send(self, event: str, data: str) -> None:
        await self.response.write(_frame(event, data, self.last_id or None))

    async def history(self, operation_id: str) -> None:
        while True:
            events = await self.fleet.operations.events(operation_id, self.last_id, 500)
            for event in events:
                self.last_id = event.id
                if event.subjob_id is not None and event.to_state is State.FAILED:
                    await self.send("subjob", _failure(event))
            if len(events) < 500:
                return

    async def update(self, view: OperationView) -> bool:
        """Send what changed; True when the operation is over (and `end` was sent)."""
        waiting = self.fleet.runtime.waiting(view.operation.id)
        out: OperationOut = operation_out(view, self.fleet.operations.clock.now(), waiting)
        if out.state.value != self.state:
            self.state = out.state.value
            await self.send("state", json.dumps({"id": out.id, "state": self.state}))
        notes = json.dumps([w.model_dump(mode="json") for w in out.waiting])
        if notes != self.waiting:
            self.waiting = notes
            await self.send("waiting", f'{{"id": {json.dumps(out.id)}, "waiting": {notes}}}')
        key = (tuple(out.counts.items()), out.eta_seconds, out.current_wave)
        if key != self.progress:
            self.progress = key
            data = {
                "id": out.id,
                "state": out.state.value,
                "counts": out.counts,
                "progress": out.progress.model_dump(),
                "eta_seconds": out.eta_seconds,
                "current_wave": out.current_wave,
                "wave_count": out.wave_count,
            }
            await self.send("progress", json.dumps(data))
        if view.state in FINISHED_OPERATIONS:
            await self.send("end", out.model_dump_json())
            return True
        return False


async def operation_events(request: web.Request) -> web.StreamResponse:
    fleet = fleet_of(request)
    operation_id = request.match_info["operation_id"]
    last_id = _resume_after(request)
    view = await fleet.operations.get(operation_id)  # 404 before the stream starts
    stopping = request.app[STOPPING]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    stream = _Stream(response, fleet, last_id, request.app[CONFIG].keepalive)
    try:
        await _pump(stream, operation_id, view, request.app[CONFIG].stream_interval, stopping)
        await response.write_eof()
    except ConnectionResetError:  # the client went away: nothing left to tell it
        pass
    return response


async def _pump(
    stream: _Stream,
    operation_id: str,
    view: OperationView,
    interval: float,
    stopping: asyncio.Event,
) -> None:
    config_keepalive = stream.keepalive
    quiet = 0.0
    while not stopping.is_set():
        await stream.history(operation_id)
        if await stream.update(view):
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stopping.wait()
        quiet += interval
        if quiet >= config_keepalive:
            quiet = 0.0
            await stream.response.write(b": keep-alive\n\n")
        view = await stream.fleet.operations.get(operation_id)
