"""`GET /v1/operations/{id}/events`: server-sent events until the operation ends.

Events (each `data:` is one JSON object):
- `state`: the operation's state changed (sent first, with the state at connection time), with
  its `approval` (null when it needs none);
- `progress`: counts by state, progress and ETA changed;
- `subjob`: a sub-job ended `failed` or `unknown` (target, state, code, message), so a watcher sees
  failures as they happen;
- `waiting`: why planning waits changed (`{"id", "waiting": [...]}` as in the operation's
  `waiting`; an empty list once it goes on);
- `end`: the operation is over (its final view); the server then closes the stream.

Every event has its own id, increasing along the stream, that says where the client is: the
position in the store's append-only event history (`subjob` events are history rows), a sequence
number among the snapshots sent at that position, and what the client knows of the operation (the
last state it was told, whether its last `progress` is current, whether it got `end`). A client
reconnecting with `Last-Event-ID` (or `?after=`) gets exactly what it has not seen: the history
rows after its position, then `state` only if the state changed, `progress` only if it changed or
was never sent, and `end` once (after `end` the answer is `204`, which tells an `EventSource` to
stop reconnecting). `state` and `progress` are snapshots: a client that was away gets the current
one, not every intermediate one.

The stream reads the history and the operation's counts every `stream_interval` seconds, both from
one snapshot: the `state` and `progress` numbered with a history position are the operation as of
that position, whatever the engine commits meanwhile. A comment
line keeps idle connections open through proxies. The stream stops early, cleanly, when the
service shuts down, and when the client goes away (at any point, even before the first byte is
sent): a normal end, logged once at debug level (`stream_client_left`), without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass

import structlog
from aiohttp import web

from fleet.api.context import CONFIG, STOPPING, fleet_of, read_query
from fleet.api.errors import field_problem
from fleet.api.limits import stream_slot
from fleet.api.schemas import EventsQuery, OperationOut
from fleet.api.views import operation_out
from fleet.service import Fleet
from jobs.records import EventRecord, OperationView
from jobs.states import FINISHED_OPERATIONS, UNSUCCESSFUL, OperationState

# id = history_id * STRIDE + seq * 64 + known, known = state_code << 2 | progress_seen << 1 | ended
STRIDE = 1 << 28
SEQ_MAX = (STRIDE >> 6) - 1
STATES: tuple[OperationState, ...] = tuple(OperationState)  # code = index + 1; 0: none told yet
assert len(STATES) < 16
MAX_ID_DIGITS = 30
PAGE = 500  # history rows read at a time

log = structlog.get_logger("fleet.api")


@dataclass
class Position:
    """Where a client is in an operation's stream (encoded in every event id)."""

    history: int = 0  # the last history row consumed
    seq: int = 0  # snapshots sent since that row (0: the row itself)
    state: OperationState | None = None  # the last state the client was told
    progress_seen: bool = False  # its last `progress` is the current one
    ended: bool = False  # it got `end`

    def encode(self) -> int:
        code = 0 if self.state is None else STATES.index(self.state) + 1
        known = code << 2 | int(self.progress_seen) << 1 | int(self.ended)
        return self.history * STRIDE + self.seq * 64 + known

    @classmethod
    def decode(cls, value: int) -> Position:
        history, rest = divmod(value, STRIDE)
        seq, known = divmod(rest, 64)
        code = known >> 2
        if code > len(STATES):
            raise ValueError(value)
        state = None if code == 0 else STATES[code - 1]
        return cls(history, seq, state, bool(known & 2), bool(known & 1))


def _resume_from(request: web.Request) -> Position:
    q = read_query(request, EventsQuery)
    header = request.headers.get("Last-Event-ID")
    field, raw = "Last-Event-ID", header
    if header is None:
        field, raw = "after", None if q.after is None else str(q.after)
    if raw is None:
        return Position()
    try:
        if not raw.isdigit() or len(raw) > MAX_ID_DIGITS:
            raise ValueError(raw)
        return Position.decode(int(raw))
    except ValueError:
        raise field_problem(field, "must be an event id this server sent") from None


def _frame(event: str, data: str, event_id: int) -> bytes:
    return f"id: {event_id}\nevent: {event}\ndata: {data}\n\n".encode()


def _failure(event: EventRecord) -> str:
    return json.dumps(
        {
            "subjob_id": event.subjob_id,
            "target_id": event.target_id,
            "state": None if event.to_state is None else event.to_state.value,
            "code": event.code,
            "message": event.message,
            "at": event.at.isoformat(),
        }
    )


class _Stream:
    """One client's stream: what it has been told so far (`pos`)."""

    def __init__(
        self, request: web.Request, response: web.StreamResponse, pos: Position, keepalive: float
    ) -> None:
        self.request = request
        self.response = response
        self.keepalive = keepalive
        self.fleet: Fleet = fleet_of(request)
        self.pos = pos
        self.progress: tuple[object, ...] | None = None
        self.waiting: str = "[]"

    def check_client(self) -> None:
        """Raise ConnectionResetError once the client has gone (the handler is not cancelled)."""
        transport = self.request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")

    async def _write(self, event: str, data: str) -> None:
        await self.response.write(_frame(event, data, self.pos.encode()))

    async def send(self, event: str, data: str) -> bool:
        """A snapshot event (`state`, `progress`, `end`); False when none can be numbered any more
        at this history position (after millions of snapshots with no history row: skipped)."""
        limit = SEQ_MAX if event == "end" else SEQ_MAX - 1
        if self.pos.seq >= limit:
            return False
        self.pos.seq += 1
        await self._write(event, data)
        return True

    async def history(self, operation_id: str) -> OperationView:
        """Send the history rows after the position; return the operation as of the last one.
        Rows and view come from one snapshot: a view read apart from them may be from before
        the position, and a `progress` sent from it would be numbered as current when it is
        not (a client resuming from its id would never be sent the current one)."""
        while True:
            events, view = await self.fleet.operations.follow(operation_id, self.pos.history, PAGE)
            for event in events:
                self.pos.history, self.pos.seq = event.id, 0
                self.pos.progress_seen = False  # the counts may have moved with this row
                if event.subjob_id is not None and event.to_state in UNSUCCESSFUL:
                    await self._write("subjob", _failure(event))
            if len(events) < PAGE:
                return view

    async def update(self, view: OperationView) -> bool:
        """Send what changed; True when the operation is over (and the client has `end`)."""
        waiting = self.fleet.runtime.waiting(view.operation.id)
        out: OperationOut = operation_out(view, self.fleet.operations.clock.now(), waiting)
        key = (tuple(out.counts.items()), out.eta_seconds, out.current_wave)
        if self.progress is None and self.pos.progress_seen:
            self.progress = key  # resumed by a client that has this progress already
        if out.state is not self.pos.state:
            self.pos.state = out.state
            self.pos.progress_seen = key == self.progress
            approval = None if out.approval is None else out.approval.model_dump(mode="json")
            told = {"id": out.id, "state": out.state.value, "approval": approval}
            await self.send("state", json.dumps(told))
        notes = json.dumps([w.model_dump(mode="json") for w in out.waiting])
        if notes != self.waiting:
            self.waiting = notes
            await self.send("waiting", f'{{"id": {json.dumps(out.id)}, "waiting": {notes}}}')
        if key != self.progress:
            data = {
                "id": out.id,
                "state": out.state.value,
                "counts": out.counts,
                "progress": out.progress.model_dump(),
                "eta_seconds": out.eta_seconds,
                "current_wave": out.current_wave,
                "wave_count": out.wave_count,
            }
            self.pos.progress_seen = True
            if await self.send("progress", json.dumps(data)):
                self.progress = key
        if view.state in FINISHED_OPERATIONS:
            self.pos.ended = True
            await self.send("end", out.model_dump_json())
            return True
        return False


async def operation_events(request: web.Request) -> web.StreamResponse:
    fleet = fleet_of(request)
    operation_id = request.match_info["operation_id"]
    resume = _resume_from(request)
    await fleet.operations.get(operation_id)  # 404 before the stream starts
    if resume.ended:
        return web.Response(status=204)  # it has seen the end: nothing follows
    stopping = request.app[STOPPING]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    stream = _Stream(request, response, resume, request.app[CONFIG].keepalive)
    try:
        with stream_slot(request):  # 429 past the token's open streams
            await response.prepare(request)
            await _pump(stream, operation_id, request.app[CONFIG].stream_interval, stopping)
            await response.write_eof()
    except ConnectionResetError:  # the client went away: a normal end, nothing left to tell it
        log.debug(
            "stream_client_left", operation_id=operation_id, last_event_id=stream.pos.encode()
        )
    return response


async def _pump(
    stream: _Stream,
    operation_id: str,
    interval: float,
    stopping: asyncio.Event,
) -> None:
    config_keepalive = stream.keepalive
    quiet = 0.0
    while not stopping.is_set():
        stream.check_client()
        if await stream.update(await stream.history(operation_id)):
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stopping.wait()
        quiet += interval
        if quiet >= config_keepalive:
            quiet = 0.0
            await stream.response.write(b": keep-alive\n\n")
