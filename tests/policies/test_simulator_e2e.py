"""End to end against the embedded simulator: a nightly stop and its morning restore on a
300-server fleet over all three dialects (ECS, BMS, EasyStack), through the real planner,
executor and engine. The policies' clock is a fake one set to the fire times; the cloud and the
engine run for real. People act on the console between the two fires (the simulator's control
plane), and the restore must respect what they did.
"""

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
from fleet.policies.service import PolicyService
from fleet.policies.store import PolicyStore
from fleet.service import Fleet, open_fleet
from fleet.settings import Settings, load_settings
from jobs.clock import FakeClock
from jobs.records import OperationView
from jobs.states import OperationState, State

ROOT = Path(__file__).resolve().parents[2]
WORLD = "seed = 21\nspeed = 200.0\n[generate]\necs = 100\nbms = 100\nopenstack = 100\n"
DONE = {
    OperationState.SUCCEEDED,
    OperationState.COMPLETED_WITH_FAILURES,
    OperationState.STOPPED,
    OperationState.CANCELLED,
    OperationState.REFUSED,
}
STOP: dict[str, object] = {
    "name": "nightly-stop",
    "cron": "0 20 * * mon-fri",
    "timezone": "Asia/Shanghai",
    "action": "stop",
    "targets": {"tags_any": {"env": ["dev", "test"]}},
    "strategy": {"max_errors": "10%"},
}
START: dict[str, object] = STOP | {
    "name": "morning-start",
    "cron": "0 8 * * mon-fri",
    "mode": "restore",
    "restore_from": "nightly-stop",
    "action": "start",
}
MON_20 = datetime(2026, 3, 2, 12, tzinfo=UTC)  # Monday 20:00 in Shanghai
TUE_08 = datetime(2026, 3, 3, 0, tzinfo=UTC)  # Tuesday 08:00


def settings(tmp_path: Path, world_text: str = WORLD) -> Settings:
    """fleet over the built-in simulator (this world unless told), SQLite in `tmp_path`."""
    world = tmp_path / "world.toml"
    world.write_text(world_text)
    return load_settings(
        [ROOT / "config" / "default.toml", ROOT / "config" / "demo.toml"],
        environ={
            "FLEET_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}",
            "FLEET_SIMULATOR__WORLD": str(world),
            "FLEET_SIMULATOR__SPEED": "200.0",
            "FLEET_ENGINE__POLL_INTERVAL": "0.2",
            "FLEET_ENGINE__IDLE_INTERVAL": "0.05",
        },
    )


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

    async def finished(self, fire: FireRecord) -> OperationView:
        assert fire.status is FireStatus.FIRED and fire.operation_id, fire
        async with asyncio.timeout(90):
            while True:
                view = await self.fleet.operations.get(fire.operation_id)
                if view.state in DONE:
                    return view
                await asyncio.sleep(0.1)

    async def succeeded(self, fire: FireRecord) -> set[tuple[str, str]]:
        assert fire.operation_id is not None
        page = await self.fleet.operations.subjobs(fire.operation_id, State.SUCCEEDED, None, 1000)
        return {(str(s.payload["endpoint"]), str(s.payload["server_id"])) for s in page.items}

    async def by_hand(self, server: ServerRef, **change: object) -> None:
        url = f"{self.fleet.simulator_url}/_sim/servers/{server.id}"
        async with self.http.patch(url, json=change) as resp:
            assert resp.status == 200, await resp.text()

    async def servers(self) -> dict[tuple[str, str], ServerRef]:
        out = {}
        for name, driver in self.fleet.drivers.items():
            async for s in driver.list_servers(Selector()):
                out[(name, s.id)] = s
        return out


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock(datetime(2026, 3, 2, tzinfo=UTC))
    async with open_fleet(settings(tmp_path)) as fleet, aiohttp.ClientSession() as http:
        store = PolicyStore(fleet.store.db)
        firing = Firing(
            store, fleet.operations, fleet.drivers, clock, "e2e", admission=fleet.admission
        )
        service = PolicyService(store, fleet.operations, fleet.drivers, clock, "e2e", {}, firing)
        yield World(fleet, clock, service, http)


def _dev(s: ServerRef) -> bool:
    return s.tags.get("env") in ("dev", "test") and s.tags.get("fleet-exclude") != "true"


async def test_nightly_stop_and_morning_restore_on_300_servers(world: World) -> None:
    before = await world.servers()
    assert len(before) == 300
    running = sorted((k for k, s in before.items() if _dev(s) and s.status is ServerStatus.RUNNING))
    by_hand_off = {k for k, s in before.items() if _dev(s) and s.status is ServerStatus.STOPPED}
    assert len(running) > 60 and by_hand_off
    snoozed = before[running[0]]
    await world.by_hand(snoozed, tags={**snoozed.tags, "fleet-snooze-until": "2026-03-02"})
    await world.service.create_policy(STOP, by="admin")
    await world.service.create_policy(START, by="admin")

    await world.at(MON_20)
    stop = await world.last_fire("nightly-stop")
    view = await world.finished(stop)
    assert view.counts.get(State.FAILED, 0) == 0
    stopped = await world.succeeded(stop)
    assert stopped == set(running[1:]), "every running dev/test server but the snoozed one"
    await world.at(datetime(2026, 3, 2, 12, 5, tzinfo=UTC))  # the sweep records the stop

    # in the night, by hand: one started, one started and stopped again, the snoozed one stopped
    now = await world.servers()
    started, touched = now[running[1]], now[running[2]]
    await world.by_hand(started, status="ACTIVE")
    await world.by_hand(touched, status="ACTIVE")
    await world.by_hand(touched, status="SHUTOFF")
    await world.by_hand(snoozed, status="SHUTOFF")

    await world.at(TUE_08)
    restore = await world.last_fire("morning-start")
    view = await world.finished(restore)
    assert view.counts.get(State.FAILED, 0) == 0
    assert await world.succeeded(restore) == stopped - {running[1], running[2]}
    after = await world.servers()
    assert after[running[2]].status is ServerStatus.STOPPED  # touched by hand: left alone
    assert after[running[0]].status is ServerStatus.STOPPED  # stopped by hand: left alone
    assert after[running[1]].status is ServerStatus.RUNNING
    assert all(after[k].status is ServerStatus.STOPPED for k in by_hand_off)
    assert all(after[k].status is ServerStatus.RUNNING for k in stopped - {running[2]})

    # the same slots again, from this process and from another replica: nothing new
    await world.at(datetime(2026, 3, 3, 0, 0, 30, tzinfo=UTC))
    await world.service.run_now("morning-start", by="admin", slot=TUE_08)
    ops = (await world.fleet.operations.list(limit=100)).items
    assert sorted(v.operation.idempotency_key or "" for v in ops) == [
        "policy:morning-start:2026-03-03T00:00:00Z",
        "policy:nightly-stop:2026-03-02T12:00:00Z",
    ]
