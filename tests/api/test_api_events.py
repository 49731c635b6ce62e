"""Server-sent events: followed to the end of an operation, and resumed with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

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
    ids_seen = [e.id for e in events if e.id is not None]
    assert ids_seen == sorted(ids_seen)
    after = await api_db.get(f"/v1/operations/{op_id}")
    assert after.body["counts"] == final["counts"]


async def test_failures_are_streamed_and_resume_skips_what_was_seen(api: Api) -> None:
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
    op_id = created.body["id"]
    events = await read_stream(api, f"/v1/operations/{op_id}/events")
    [failure] = [e for e in events if e.event == "subjob"]
    assert failure.data["target_id"] == f"ecs-sim/{ids[1]}"
    assert failure.data["code"] == "Ecs.0001"
    assert events[-1].data["state"] == "completed_with_failures"

    last = max(e.id for e in events if e.id is not None)
    again = await read_stream(
        api, f"/v1/operations/{op_id}/events", headers={"Last-Event-ID": str(last)}
    )
    assert [e.event for e in again] == ["state", "progress", "end"]
    assert all(e.id == last for e in again)
    query = await read_stream(api, f"/v1/operations/{op_id}/events?after=0")
    assert [e.event for e in query].count("subjob") == 1


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
