"""An operation whose planning waits on a slow or failing cloud says why: the operation's `waiting`
field, a `waiting` event on its stream, and the CLI, cleared once planning goes on."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from fleet.api.context import ApiConfig
from fleet.cli.client import Client, summary_text, watch
from tests.api.conftest import Api, api_settings, serving

LIST = "huawei-nova:list"  # the simulator's rate key of the ECS endpoint's server listing
BODY = {"action": "reboot", "targets": {"endpoints": ["ecs-sim"]}, "dry_run": True}


@pytest.fixture
async def api(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Api]:
    config = ApiConfig(stream_interval=0.05, dry_run_wait=0.0)
    async with serving(api_settings(tmp_path, sqlite_url), config) as running:
        yield running


async def _fault(api: Api, **rule: object) -> None:
    url = f"{api.fleet.simulator_url}/_sim/faults"
    async with aiohttp.ClientSession() as session, session.post(url, json=rule) as resp:
        assert resp.status in (200, 201), await resp.text()


async def _waiting(api: Api, op_id: str, seconds: float = 20.0) -> list[dict[str, object]]:
    async with asyncio.timeout(seconds):
        while True:
            reply = await api.get(f"/v1/operations/{op_id}")
            notes = reply.body["waiting"]
            assert isinstance(notes, list)
            if notes:
                return notes
            await asyncio.sleep(0.05)


async def _events(api: Api, op_id: str) -> list[tuple[str, dict[str, object]]]:
    """The operation's stream until `end` (as the CLI reads it)."""
    async with aiohttp.ClientSession() as session:
        client = Client(str(api.client.make_url("")), api.tokens["viewer"], session)
        return [(event, data) async for event, data in client.events(op_id)]


async def test_a_slow_listing_shows_why_planning_waits_until_it_goes_on(api: Api) -> None:
    await _fault(api, kind="latency", match=LIST, count=1, ms=2500)
    made = await api.post("/v1/operations", BODY)
    op_id = str(made.body["operation"]["id"])  # type: ignore[index]
    stream = asyncio.create_task(_events(api, op_id))
    try:
        await _slow_listing_shown(api, op_id)
    finally:
        if not stream.done():
            await asyncio.sleep(2)  # the stream ends with the operation
            stream.cancel()
    events = await asyncio.gather(stream, return_exceptions=True)
    assert not isinstance(events[0], BaseException), events
    waits = [data["waiting"] for event, data in events[0] if event == "waiting"]
    assert waits and waits[-1] == [], events
    assert any(w and w[0]["endpoint"] == "ecs-sim" for w in waits), waits  # type: ignore[index]


async def _slow_listing_shown(api: Api, op_id: str) -> None:
    notes = await _waiting(api, op_id)
    assert [n["endpoint"] for n in notes] == ["ecs-sim"]
    assert "waiting for the answer to GET" in str(notes[0]["reason"]), notes
    assert notes[0]["since"]
    shown = summary_text((await api.get(f"/v1/operations/{op_id}")).body)
    assert "waiting (ecs-sim, since" in shown and "waiting for the answer" in shown
    done = await api.wait(op_id)
    assert done["state"] == "planned" and done["waiting"] == []


async def test_retries_then_a_postponed_attempt_are_shown(api: Api) -> None:
    await _fault(api, kind="error_burst", match=LIST, count=2, status=503)
    made = await api.post("/v1/operations", BODY)
    op_id = str(made.body["operation"]["id"])  # type: ignore[index]
    notes = await _waiting(api, op_id)
    assert notes[0]["endpoint"] == "ecs-sim"
    assert "retrying GET" in str(notes[0]["reason"]) and "503" in str(notes[0]["reason"]), notes
    done = await api.wait(op_id)
    assert done["state"] == "planned" and done["waiting"] == []

    await _fault(api, kind="error_burst", match=LIST, count=3, status=503)
    made = await api.post("/v1/operations", {**BODY, "action": "stop", "dry_run": False})
    op_id = str(made.body["id"])  # not a dry run: it can be cancelled while it waits
    async with asyncio.timeout(20):
        while True:
            notes = await _waiting(api, op_id)
            if notes[0]["endpoint"] is None:
                break
            await asyncio.sleep(0.05)
    assert "planning attempt 1 of 3 failed" in str(notes[0]["reason"]), notes
    assert notes[0]["until"] is not None
    # the CLI follows the operation and prints the note
    out, err = io.StringIO(), io.StringIO()
    async with aiohttp.ClientSession() as session:
        client = Client(str(api.client.make_url("")), api.tokens["viewer"], session)
        follow = asyncio.create_task(watch(client, op_id, out, err))
        for _ in range(400):
            if "waiting (planning, since" in err.getvalue():
                break
            await asyncio.sleep(0.05)
        cancelled = await api.post(f"/v1/operations/{op_id}/cancel")
        assert cancelled.status == 200, cancelled.body
        final = await asyncio.wait_for(follow, 30)
    assert final["state"] == "cancelled" and final["waiting"] == []
    assert "planning attempt 1 of 3 failed" in err.getvalue()
    assert json.dumps(notes)  # plain JSON values
