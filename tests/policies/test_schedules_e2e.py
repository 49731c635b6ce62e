"""Per-server schedules end to end on the embedded simulator: a server tagged
`fleet-schedule=office` is stopped at the period's end and started at its begin by a pair of
schedule-mode policies, through the one door and the real engine; an untagged server is never
touched; a server tagged with a schedule nobody defined is left alone and reported."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from fleet.domain import Selector, ServerRef, ServerStatus
from fleet.policies.firing import Firing
from fleet.policies.records import FireRecord, FireStatus
from fleet.policies.schedules import ScheduleService
from fleet.policies.service import PolicyService
from fleet.policies.store import PolicyStore
from fleet.policies.store_schedules import ScheduleStore
from fleet.service import Fleet, open_fleet
from fleet.settings import Settings
from jobs.clock import FakeClock
from jobs.states import OperationState, State
from tests.policies.test_simulator_e2e import settings as simulator_settings

WORLD = "seed = 5\nspeed = 200.0\n[generate]\necs = 12\n"
OFFICE: dict[str, object] = {
    "name": "office",
    "timezone": "Europe/Berlin",
    "periods": [{"begintime": "08:00", "endtime": "18:00", "weekdays": ["mon-fri"]}],
}
STOP: dict[str, object] = {
    "name": "office-stop",
    "mode": "schedule",
    "action": "stop",
    "cron": "* * * * *",
    "timezone": "Europe/Berlin",
}
START = STOP | {"name": "office-start", "action": "start"}
MON_1759 = datetime(2026, 3, 2, 16, 59, tzinfo=UTC)  # Monday 17:59 CET
MON_18 = datetime(2026, 3, 2, 17, tzinfo=UTC)  # 18:00 CET: the period ends
TUE_08 = datetime(2026, 3, 3, 7, tzinfo=UTC)  # Tuesday 08:00 CET: it begins again
DONE = {
    OperationState.SUCCEEDED,
    OperationState.COMPLETED_WITH_FAILURES,
    OperationState.STOPPED,
    OperationState.CANCELLED,
    OperationState.REFUSED,
}


def settings(tmp_path: Path) -> Settings:
    return simulator_settings(tmp_path, WORLD)


@dataclass
class World:
    fleet: Fleet
    clock: FakeClock
    service: PolicyService
    http: aiohttp.ClientSession

    async def at(self, when: datetime) -> None:
        await self.clock.advance((when - self.clock.now()).total_seconds())
        await self.service.tick()

    async def last_fire(self, policy: str) -> FireRecord:
        return (await self.service.fires(policy, limit=1))[0]

    async def finished(self, fire: FireRecord) -> set[str]:
        """The ids the fire's operation acted on successfully, once it has ended."""
        assert fire.status is FireStatus.FIRED and fire.operation_id, fire
        async with asyncio.timeout(60):
            while True:
                if (await self.fleet.operations.get(fire.operation_id)).state in DONE:
                    break
                await asyncio.sleep(0.1)
        page = await self.fleet.operations.subjobs(fire.operation_id, State.SUCCEEDED, None, 100)
        return {str(s.payload["server_id"]) for s in page.items}

    async def tag(self, server: ServerRef, **tags: str) -> None:
        url = f"{self.fleet.simulator_url}/_sim/servers/{server.id}"
        async with self.http.patch(url, json={"tags": {**server.tags, **tags}}) as resp:
            assert resp.status == 200, await resp.text()

    async def servers(self) -> dict[str, ServerRef]:
        out = {}
        for driver in self.fleet.drivers.values():
            async for s in driver.list_servers(Selector()):
                out[s.id] = s
        return out


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock(MON_1759)
    async with open_fleet(settings(tmp_path)) as fleet, aiohttp.ClientSession() as http:
        store = PolicyStore(fleet.store.db)
        schedules = ScheduleService(ScheduleStore(fleet.store.db), clock, inventory=fleet.drivers)
        firing = Firing(
            store, fleet.operations, fleet.drivers, clock, "e2e",
            admission=fleet.admission, schedules=schedules,
        )  # fmt: skip
        service = PolicyService(store, fleet.operations, fleet.drivers, clock, "e2e", {}, firing)
        yield World(fleet, clock, service, http)


def _plain(s: ServerRef) -> bool:
    return s.status is ServerStatus.RUNNING and not any(k.startswith("fleet-") for k in s.tags)


async def test_a_tagged_server_follows_its_schedule_and_others_are_left_alone(
    world: World,
) -> None:
    running = sorted((s for s in (await world.servers()).values() if _plain(s)), key=lambda s: s.id)
    assert len(running) >= 3
    tagged, untagged, unknown = running[:3]
    await world.tag(tagged, **{"fleet-schedule": "office"})
    await world.tag(unknown, **{"fleet-schedule": "night-shift"})
    await world.service.schedules.create_schedule(OFFICE, by="admin")
    await world.service.create_policy(STOP, by="admin")
    await world.service.create_policy(START, by="admin")

    await world.at(MON_1759 + (MON_18 - MON_1759) / 2)  # 17:59:30: no slot since creation
    assert await world.service.fires("office-stop") == []

    await world.at(MON_18)
    stop = await world.last_fire("office-stop")
    assert stop.scheduled_at == MON_18
    assert await world.finished(stop) == {tagged.id}
    assert stop.details["skipped_by_reason"] == {
        "unknown schedule 'night-shift' (fleet-schedule)": 1
    }
    assert stop.details["considered"] == 2  # the untagged servers are not the policy's
    now = await world.servers()
    assert now[tagged.id].status is ServerStatus.STOPPED
    assert now[untagged.id].status is ServerStatus.RUNNING
    assert now[unknown.id].status is ServerStatus.RUNNING

    preview = await world.service.schedules.preview("office")
    (row,) = preview["servers"]  # type: ignore[misc]
    assert row["server_id"] == tagged.id and row["desired_now"] == "stopped"
    assert row["next_transitions"][0]["at"] == "2026-03-03T07:00:00Z"
    policy_preview = (await world.service.preview("office-start")).to_json()
    reasons = {s["server_id"]: s["reason"] for s in policy_preview["targets"]["servers"]}  # type: ignore[index, union-attr]
    assert reasons == {
        tagged.id: "schedule office: stopped now",
        unknown.id: "unknown schedule 'night-shift' (fleet-schedule)",
    }

    await world.at(TUE_08)
    start = await world.last_fire("office-start")
    assert start.scheduled_at == TUE_08
    assert await world.finished(start) == {tagged.id}
    assert (await world.last_fire("office-stop")).reason == "no servers to act on"
    now = await world.servers()
    assert now[tagged.id].status is ServerStatus.RUNNING
    assert now[untagged.id].updated == untagged.updated, "never touched"
    assert now[unknown.id].status is ServerStatus.RUNNING
    ops = (await world.fleet.operations.list(limit=100)).items
    assert sorted(v.operation.idempotency_key or "" for v in ops) == [
        "policy:office-start:2026-03-03T07:00:00Z",
        "policy:office-stop:2026-03-02T17:00:00Z",
    ]
