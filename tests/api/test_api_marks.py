"""Mark-then-act on all three simulator dialects, through the API: the shipped `mark-sandbox`
example and a clean-up policy are created with `POST /v1/policies`, the mark policy is run for a
past Monday (`POST /v1/policies/{name}/run?slot=`), then the clean-up for the day its mark is due.

Every dialect carries the mark as a tag (`fleet-op=delete.YYYY-MM-DD`): the suite's EasyStack
serves the tag API (fleet reads it in the compute version document). An EasyStack that does not
(it advertises 2.25) has no tags at all: fleet keeps the mark itself and the clean-up reads it
there (the last test). The example marks for
`delete`, which BMS cannot do (no delete API: the planner skips those servers as unsupported);
the same flow with `op = "stop"` acts on all three dialects.
"""

from __future__ import annotations

import asyncio
import tomllib
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from fleet.domain import Selector, ServerRef
from jobs.states import State
from tests.api.conftest import NO_TAG_API, ROOT, Api, api_settings, serving

BERLIN = ZoneInfo("Europe/Berlin")
ENDPOINTS = ("ecs-sim", "bms-sim", "easystack-sim")


def example(name: str) -> dict[str, Any]:
    text = (ROOT / "config" / "policies.example.toml").read_text(encoding="utf-8")
    [found] = [p for p in tomllib.loads(text)["policies"] if p["name"] == name]
    return dict(found)


def slot(day: date, at: time) -> str:
    """A wall time in Berlin as the UTC instant the API takes."""
    return datetime.combine(day, at, BERLIN).astimezone(UTC).isoformat().replace("+00:00", "Z")


def past_monday(weeks_back: int) -> date:
    today = datetime.now(BERLIN).date()
    return today - timedelta(days=today.weekday() + 7 * weeks_back)


async def servers(api: Api) -> dict[str, ServerRef]:
    out = {}
    for driver in api.fleet.drivers.values():
        async for s in driver.list_servers(Selector()):
            out[s.id] = s
    return out


async def label(api: Api, env: str, per_endpoint: int, taken: set[str]) -> dict[str, str]:
    """Tag `env=<env>` on running servers of every endpoint, by hand (the simulator's control
    plane); returns server id -> endpoint."""
    chosen: dict[str, str] = {}
    everything = await servers(api)
    async with aiohttp.ClientSession() as http:
        for endpoint in ENDPOINTS:
            fit = [
                s
                for s in everything.values()
                if s.endpoint == endpoint
                and s.status.value == "running"
                and s.id not in taken
                and s.tags.get("fleet-exclude") != "true"
            ][:per_endpoint]
            assert len(fit) == per_endpoint, endpoint
            for s in fit:
                url = f"{api.fleet.simulator_url}/_sim/servers/{s.id}"
                async with http.patch(url, json={"tags": {**s.tags, "env": env}}) as resp:
                    assert resp.status == 200, await resp.text()
                chosen[s.id] = endpoint
    taken.update(chosen)
    return chosen


async def run(api: Api, policy: str, at: str) -> dict[str, Any]:
    reply = await api.post(f"/v1/policies/{policy}/run", params={"slot": at})
    assert reply.status == 200, reply.body
    fire = reply.body["fire"]
    assert isinstance(fire, dict) and fire["status"] == "fired", fire
    if fire["operation_id"]:
        await approved(api, fire["operation_id"])
        await api.wait(fire["operation_id"])
    return fire


async def approved(api: Api, operation_id: str) -> None:
    """A clean-up that deletes beyond the delete guard waits for a second token's approval
    (`[approvals] deletes_beyond_guard`): the admin approves the fire the operator ran."""
    async with asyncio.timeout(30):
        while True:
            op = (await api.get(f"/v1/operations/{operation_id}")).body
            if op["state"] != "planning":
                break
            await asyncio.sleep(0.05)
    if op["state"] == "pending_approval":
        assert "beyond the delete guard" in str(op["approval"]["reason"]), op  # type: ignore[index]
        reply = await api.post(f"/v1/operations/{operation_id}/approve", role="admin")
        assert reply.status == 200, reply.body


async def succeeded(api: Api, operation_id: str) -> set[str]:
    page = await api.fleet.operations.subjobs(operation_id, State.SUCCEEDED, None, 1000)
    return {str(s.payload["server_id"]) for s in page.items}


async def create(api: Api, body: dict[str, Any]) -> None:
    reply = await api.call("POST", "/v1/policies", json=body, role="admin")
    assert reply.status == 201, reply.body


async def mark_and_act(
    api: Api, mark: dict[str, Any], cleanup: dict[str, Any], labelled: dict[str, str]
) -> tuple[dict[str, Any], str]:
    """Create both policies, run the mark on a Monday three weeks back and the clean-up on the
    day the mark is due; returns the clean-up's fire and the mark value."""
    await create(api, mark)
    await create(api, cleanup)
    monday = past_monday(3)
    due = monday + timedelta(days=mark["mark"]["days"])
    value = f"{mark['mark']['op']}.{due.isoformat()}"

    preview = await api.get(f"/v1/policies/{mark['name']}/preview", params={"servers": "1000"})
    assert preview.status == 200, preview.body
    kept = {s["server_id"]: s["mark_kept"] for s in preview.body["targets"]["servers"]}  # type: ignore[call-overload,index]
    assert {i: kept[i] for i in labelled} == dict.fromkeys(labelled, "tag")

    fire = await run(api, mark["name"], slot(monday, time(6)))
    assert fire["details"].get("marks_kept_by_fleet", 0) == 0
    assert fire["operation_id"] is not None
    assert await succeeded(api, fire["operation_id"]) == set(labelled)
    now = await servers(api)
    assert {i: now[i].tags.get("fleet-op") for i in labelled} == dict.fromkeys(labelled, value)

    on_the_day = await run(api, cleanup["name"], slot(due, time(2, 30)))
    assert on_the_day["operation_id"] is not None
    return on_the_day, value


async def test_the_mark_sandbox_example_marks_and_deletes_on_every_dialect(api: Api) -> None:
    taken: set[str] = set()
    sandbox = await label(api, "sandbox", 2, taken)
    mark = example("mark-sandbox")
    # BMS has no delete API: an operation that names a BMS endpoint is refused as a whole, so
    # the clean-up names the endpoints that can delete (the world has 8 to 16 servers each)
    cleanup = example("expiry-cleanup") | {
        "guard": {"max_servers": 20, "max_percent": 50},
        "targets": {"endpoints": ["ecs-sim", "easystack-sim"]},
    }
    fire, value = await mark_and_act(api, mark, cleanup, sandbox)
    deletable = {i for i, e in sandbox.items() if e != "bms-sim"}
    assert fire["targets"] == len(deletable), fire["details"]
    assert await succeeded(api, fire["operation_id"]) == deletable
    left = await servers(api)
    assert all(i not in left or left[i].status.value == "deleted" for i in deletable)
    bms = set(sandbox) - deletable
    assert all(left[i].tags["fleet-op"] == value for i in bms)  # marked, not deletable


async def test_a_stop_mark_is_acted_on_on_ecs_bms_and_easystack(api: Api) -> None:
    taken: set[str] = set()
    scratch = await label(api, "scratch", 2, taken)
    mark = example("mark-sandbox") | {
        "name": "mark-scratch",
        "mark": {"op": "stop", "days": 7},
        "targets": {"tags_all": {"env": "scratch"}},
    }
    cleanup = {
        "name": "stop-marked", "cron": "30 2 * * *", "timezone": "Europe/Berlin",
        "mode": "cleanup", "action": "stop", "targets": {"tags_all": {"env": "scratch"}},
    }  # fmt: skip
    fire, _ = await mark_and_act(api, mark, cleanup, scratch)
    assert await succeeded(api, fire["operation_id"]) == set(scratch)
    now = await servers(api)
    assert {now[i].status.value for i in scratch} == {"stopped"}


async def test_on_an_easystack_without_tag_api_fleet_keeps_the_mark_and_acts_on_it(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The EasyStack advertises 2.25: fleet finds no tag API in its version document, so
    its servers carry no tags; a mark policy (chosen by ids here) keeps its marks in fleet and
    sends nothing, and the clean-up stops the marked servers on the due day."""
    async with serving(api_settings(tmp_path, sqlite_url, NO_TAG_API)) as api:
        everything = await servers(api)
        chosen = sorted(
            s.id
            for s in everything.values()
            if s.endpoint == "easystack-sim" and s.status.value == "running"
        )[:2]
        assert len(chosen) == 2 and all(not everything[i].tags for i in chosen)
        targets = {"endpoints": ["easystack-sim"], "ids": chosen}
        mark = example("mark-sandbox") | {
            "name": "mark-es", "mark": {"op": "stop", "days": 7}, "targets": targets,
        }  # fmt: skip
        cleanup = {
            "name": "stop-marked-es", "cron": "30 2 * * *", "timezone": "Europe/Berlin",
            "mode": "cleanup", "action": "stop", "targets": targets,
        }  # fmt: skip
        await create(api, mark)
        await create(api, cleanup)
        monday = past_monday(3)
        preview = await api.get("/v1/policies/mark-es/preview", params={"servers": "1000"})
        assert preview.status == 200, preview.body
        kept = {s["server_id"]: s["mark_kept"] for s in preview.body["targets"]["servers"]}  # type: ignore[call-overload,index]
        assert kept == dict.fromkeys(chosen, "fleet")

        fire = await run(api, "mark-es", slot(monday, time(6)))
        assert fire["details"]["marks_kept_by_fleet"] == 2
        assert fire["operation_id"] is None  # nothing to send: the cloud keeps no tags

        early = slot(monday + timedelta(days=3), time(2, 30))
        before = await api.post("/v1/policies/stop-marked-es/run", params={"slot": early})
        assert before.status == 200, before.body
        assert before.body["fire"]["outcome"] == "skipped"  # type: ignore[call-overload,index]
        due = await run(api, "stop-marked-es", slot(monday + timedelta(days=7), time(2, 30)))
        assert due["operation_id"] is not None
        assert await succeeded(api, due["operation_id"]) == set(chosen)
        now = await servers(api)
        assert {now[i].status.value for i in chosen} == {"stopped"}
