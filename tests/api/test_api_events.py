"""Server-sent events: followed to the end of an operation, and resumed with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import pytest

from fleet.api.events import STRIDE
from jobs.records import OperationView
from tests.api.conftest import Api


@dataclass(frozen=True)
class Sse:
    id: int | None
    event: str
    data: dict[str, object]


async def read_stream(api: Api, path: str, headers: dict[str, str] | None = None) -> list[Sse]:
    """Every event until the server closes the stream (bounded)."""
    out: list[Sse] = []
    async with (
        asyncio.timeout(60),
        api.client.get(path, headers={**api.auth("viewer"), **(headers or {})}) as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        fields: dict[str, str] = {}
        async for raw in resp.content:  # ends when the server closes the stream
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            if fields:
                event_id = int(fields["id"]) if "id" in fields else None
                out.append(Sse(event_id, fields["event"], json.loads(fields["data"])))
                fields = {}
    return out


async def test_stream_follows_an_operation_to_its_end(api_db: Api) -> None:
    servers = await api_db.servers("easystack-sim", status="running")
    ids = [str(s["id"]) for s in servers[:6]]
    body = {
        "action": "reboot",
        "targets": {"endpoints": ["easystack-sim"], "ids": ids},
        "strategy": {"waves": [1, 2, "100%"], "max_in_flight": 2},
    }
    created = await api_db.post("/v1/operations", body)
    op_id = created.body["id"]
    events = await read_stream(api_db, f"/v1/operations/{op_id}/events")

    assert events[0].event == "state"
    assert events[-1].event == "end"
    final = events[-1].data
    assert final["state"] == "succeeded"
    assert final["counts"]["succeeded"] == len(ids)
    progress = [e for e in events if e.event == "progress"]
    done = [int(e.data["progress"]["done"]) for e in progress]
    assert done == sorted(done), "progress never goes backwards"
    assert len(set(done)) >= 2, "more than one step of progress was streamed"
    assert done[-1] == len(ids)
    states = [e.data["state"] for e in events if e.event == "state"]
    assert states[-1] == "succeeded" and "running" in states
    ids_seen = [e.id for e in events]
    assert None not in ids_seen and ids_seen == sorted(set(ids_seen))
    after = await api_db.get(f"/v1/operations/{op_id}")
    assert after.body["counts"] == final["counts"]


async def test_failures_are_streamed_and_resume_replays_what_followed(api_db: Api) -> None:
    """Every event has its own increasing id; resuming from any id after the last history row
    replays exactly the events that followed it (SQLite and PostgreSQL)."""
    api = api_db
    servers = await api.servers("ecs-sim", status="running")
    ids = [str(s["id"]) for s in servers[:3]]
    sim = api.fleet.simulator_url
    async with api.client.session.post(
        f"{sim}/_sim/faults",
        json={"kind": "job_fail", "server_ids": [ids[1]], "error_code": "Ecs.0001"},
    ) as resp:
        assert resp.status == 201
    created = await api.post(
        "/v1/operations", {"action": "stop", "targets": {"endpoints": ["ecs-sim"], "ids": ids}}
    )
    path = f"/v1/operations/{created.body['id']}/events"
    events = await read_stream(api, path)
    [failure] = [e for e in events if e.event == "subjob"]
    assert failure.data["target_id"] == f"ecs-sim/{ids[1]}"
    assert failure.data["code"] == "Ecs.0001"
    assert events[-1].data["state"] == "completed_with_failures"
    numbered = [e.id for e in events]
    assert None not in numbered and numbered == sorted(set(numbered)), numbered

    final_state = max(i for i, e in enumerate(events) if e.event == "state")
    resumed = await read_stream(api, path, headers={"Last-Event-ID": str(events[final_state].id)})
    assert [e.event for e in resumed] in (["progress", "end"], ["end"])
    assert resumed == events[final_state + 1 :]
    last_row = int(str(events[-1].id)) // STRIDE  # the history position the stream ended at
    for i, event in enumerate(events[:-1]):  # from every id after the last history row
        if int(str(event.id)) // STRIDE == last_row:
            again = await read_stream(api, path, headers={"Last-Event-ID": str(event.id)})
            assert again == events[i + 1 :], event
    after_failure = await read_stream(api, f"{path}?after={failure.id}")
    assert "subjob" not in [e.event for e in after_failure]
    assert after_failure[-1].event == "end"
    query = await read_stream(api, f"{path}?after=0")
    assert [e.event for e in query].count("subjob") == 1

    async with api.client.get(
        path, headers={**api.auth("viewer"), "Last-Event-ID": str(events[-1].id)}
    ) as resp:
        assert resp.status == 204  # after `end` nothing follows: EventSource stops reconnecting
    for bad in ("63", "x1", "9" * 31):
        reply = await api.get(path, headers={"Last-Event-ID": bad})
        assert reply.status == 422 and reply.body["field"] == "Last-Event-ID", bad


async def test_a_resume_replays_what_followed_when_the_operation_moved_between_reads(
    api_db: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a stream numbers with a history position is the operation as of that position, even
    when the operation moves on between two of the stream's reads: here it is resumed, and runs
    to its end, right after the stream's first read of it (the one that answers 404 for an
    unknown id). Resuming from any id after the last history row replays what followed."""
    api = api_db
    servers = await api.servers("easystack-sim", status="running")
    body = {
        "action": "reboot",
        "targets": {"endpoints": ["easystack-sim"], "ids": [str(s["id"]) for s in servers[:3]]},
        "strategy": {"waves": [1, "100%"], "pause_after_wave": True},
    }
    op_id = str((await api.post("/v1/operations", body)).body["id"])
    await api.wait_state(op_id, "paused")
    operations = api.fleet.operations
    read = operations.get
    moved = asyncio.Event()

    async def read_then_finish(operation_id: str) -> OperationView:
        view = await read(operation_id)
        if not moved.is_set():
            moved.set()
            await operations.resume(operation_id, "operator-t")
            await api.wait(operation_id)  # polls GET: this function only reads from now on
        return view

    monkeypatch.setattr(operations, "get", read_then_finish)
    path = f"/v1/operations/{op_id}/events"
    events = await read_stream(api, path)
    monkeypatch.undo()
    assert moved.is_set() and events[-1].event == "end"
    assert events[-1].data["state"] == "succeeded"
    last_row = int(str(events[-1].id)) // STRIDE
    for i, event in enumerate(events[:-1]):
        if int(str(event.id)) // STRIDE == last_row:
            again = await read_stream(api, path, headers={"Last-Event-ID": str(event.id)})
            assert again == events[i + 1 :], (event, events)


async def test_streams_end_when_the_service_stops(api: Api) -> None:
    servers = await api.servers("easystack-sim", status="running")
    body = {
        "action": "reboot",
        "targets": {"endpoints": ["easystack-sim"], "ids": [str(s["id"]) for s in servers[:2]]},
        "strategy": {"waves": [1], "pause_after_wave": True},
    }
    created = await api.post("/v1/operations", body)
    op_id = str(created.body["id"])
    await api.wait_state(op_id, "paused")
    reader = asyncio.create_task(read_stream(api, f"/v1/operations/{op_id}/events"))
    await asyncio.sleep(0.2)
    assert not reader.done()
    await api.client.app.shutdown()  # what a graceful stop runs first (on_shutdown)
    events = await reader
    assert events and events[-1].event != "end"
