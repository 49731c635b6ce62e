"""The savings report over a scripted week, checked against hand arithmetic to the minute.

A nightly stop at 20:00 and a morning restore at 08:00 (Europe/Berlin, Monday to Friday), a
holiday on Wednesday (both policies skip it), and one server started by hand at 23:00 on Monday
in the simulator's console. The cloud is the simulator over loopback (its clock held still and
moved with the policies' fake clock through `/_sim/clock`); the engine is the policy tests' fake
one, acting two or three minutes after each slot through the same console, so that the times
fleet recorded are known exactly. Tracking runs in the policy service's sweeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from fleet.domain import ServerStatus
from fleet.drivers.base import Driver
from fleet.engine.opspec import parse_targets
from fleet.policies.drift import DriftLog, Enforcer
from fleet.policies.firing import Firing
from fleet.policies.records import FireStatus
from fleet.policies.reports import Reports
from fleet.policies.savings import Prices
from fleet.policies.service import PolicyService
from fleet.policies.store import PolicyStore
from fleet.policies.store_tracking import TrackingStore
from fleet.policies.tracking import Tracker, TrackingConfig
from fleet.service import Fleet, open_fleet
from fleet.settings import load_settings
from jobs.clock import FakeClock
from jobs.states import OperationState, State
from tests.policies.fakes import LEADS_TO, FakeCloud, FakeOperations, _subjob

ROOT = Path(__file__).resolve().parents[2]
BERLIN = ZoneInfo("Europe/Berlin")
HOLIDAY = "2036-06-04"  # a Wednesday
WORLD = """
seed = 3
[generate]
ecs = 0
bms = 0
openstack = 0
[[servers]]
id = "a"
name = "dev-a"
kind = "ecs"
flavor = "s6.large.2"
tags = { env = "dev" }
[[servers]]
id = "b"
name = "dev-b"
kind = "ecs"
flavor = "s6.large.2"
tags = { env = "dev" }
[[servers]]
id = "c"
name = "dev-c"
kind = "ecs"
status = "SHUTOFF"
flavor = "s6.large.2"
tags = { env = "dev" }
"""
PRICES = '[prices]\ncurrency = "EUR"\n[prices.hourly.ecs-sim]\n"s6.large.2" = 0.10\n'
STOP: dict[str, object] = {
    "name": "nightly-stop",
    "cron": "0 20 * * mon-fri",
    "timezone": "Europe/Berlin",
    "action": "stop",
    "targets": {"endpoints": ["ecs-sim"], "tags_all": {"env": "dev"}},
    "skip_dates": [HOLIDAY],
}
RESTORE: dict[str, object] = STOP | {
    "name": "morning-start",
    "cron": "0 8 * * mon-fri",
    "mode": "restore",
    "restore_from": "nightly-stop",
    "action": "start",
}


def berlin(day: int, hour: int, minute: int = 0) -> datetime:
    """A time of June 2036 in Berlin (UTC+2 all week: no change of summer time)."""
    return datetime(2036, 6, day, hour, minute, tzinfo=BERLIN)


@dataclass
class SimEngine(FakeOperations):
    """The fake engine of the policy tests, acting on the simulator through its console."""

    drivers: Mapping[str, Driver] = field(default_factory=dict)
    http: aiohttp.ClientSession | None = None
    sim_url: str = ""

    async def act(self, operation_id: str) -> None:
        new, record = self.ops[operation_id]
        assert self.clock is not None and self.http is not None
        targets, want = parse_targets(new.selector), LEADS_TO[new.kind]
        now, rows = self.clock.now(), []
        for endpoint in targets.endpoints:
            async for server in self.drivers[endpoint].list_servers(targets.selector):
                state = State.SKIPPED
                if server.status is not want:
                    status = "ACTIVE" if want is ServerStatus.RUNNING else "SHUTOFF"
                    url = f"{self.sim_url}/_sim/servers/{server.id}"
                    async with self.http.patch(url, json={"status": status}) as resp:
                        assert resp.status == 200
                    state = State.SUCCEEDED
                n = len(rows) + 1
                rows.append(
                    _subjob(operation_id, n, endpoint, server.id, state, now, server.flavor)
                )
        self.subjobs_of[operation_id] = rows
        self.state[operation_id] = OperationState.SUCCEEDED
        self.ops[operation_id] = (new, record.__class__(**{**record.__dict__, "finished_at": now}))


@dataclass
class Week:
    fleet: Fleet
    clock: FakeClock
    engine: SimEngine
    service: PolicyService
    tracking: TrackingStore
    http: aiohttp.ClientSession

    async def at(self, when: datetime) -> None:
        """Both clocks to `when` (the simulator's is held still: speed 1e-6)."""
        await self.clock.advance((when - self.clock.now()).total_seconds())
        url = f"{self.fleet.simulator_url}/_sim/clock"
        async with self.http.post(url, json={"advance": 0}) as resp:
            sim_now = datetime.fromisoformat((await resp.json())["now"])
        async with self.http.post(url, json={"advance": (when - sim_now).total_seconds()}):
            pass

    async def tick(self, when: datetime) -> None:
        await self.at(when)
        await self.service.tick()

    async def fire_and_act(self, slot: datetime, policy: str, after: timedelta) -> None:
        """The slot's fire, its operation acted `after` the slot, then a sweep a minute later."""
        await self.tick(slot)
        fire = (await self.service.fires(policy, limit=1))[0]
        assert fire.scheduled_at == slot and fire.status is FireStatus.FIRED, fire
        assert fire.operation_id is not None
        await self.at(slot + after)
        await self.engine.act(fire.operation_id)
        await self.tick(slot + after + timedelta(minutes=1))

    async def by_hand(self, server_id: str, status: str) -> None:
        url = f"{self.fleet.simulator_url}/_sim/servers/{server_id}"
        async with self.http.patch(url, json={"status": status}) as resp:
            assert resp.status == 200


@pytest.fixture
async def week(tmp_path: Path) -> AsyncIterator[Week]:
    (tmp_path / "world.toml").write_text(WORLD)
    (tmp_path / "prices.toml").write_text(PRICES)
    settings = load_settings(
        [ROOT / "config" / "default.toml", ROOT / "config" / "demo.toml", tmp_path / "prices.toml"],
        environ={
            "FLEET_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}",
            "FLEET_SIMULATOR__WORLD": str(tmp_path / "world.toml"),
            "FLEET_SIMULATOR__SPEED": "0.000001",
        },
    )
    clock = FakeClock(berlin(2, 12))
    async with (
        open_fleet(settings, run_engine=False) as fleet,
        aiohttp.ClientSession() as http,
    ):
        assert fleet.simulator_url is not None
        engine = SimEngine(FakeCloud(), clock=clock, drivers=fleet.drivers, http=http)
        engine.sim_url = fleet.simulator_url
        store, tracking = PolicyStore(fleet.store.db), TrackingStore(fleet.store.db)
        firing = Firing(store, engine, fleet.drivers, clock, "week", admission=fleet.admission)
        service = PolicyService(store, engine, fleet.drivers, clock, "week", {}, firing)
        enforcer = Enforcer(tracking, fleet.admission, engine, clock)
        service.tracker = Tracker(
            tracking, engine, fleet.drivers, DriftLog(tracking, clock, enforcer),
            TrackingConfig(check_interval=timedelta(0), drift_window=timedelta(hours=12)),
        )  # fmt: skip
        w = Week(fleet, clock, engine, service, tracking, http)
        await w.at(berlin(2, 12))
        yield w


async def test_a_scripted_week_matches_hand_arithmetic_to_the_minute(week: Week) -> None:
    await week.service.create_policy(STOP, by="admin")
    await week.service.create_policy(RESTORE, by="admin")
    stop, start = timedelta(minutes=2), timedelta(minutes=3)

    await week.fire_and_act(berlin(2, 20), "nightly-stop", stop)  # Mon: a and b (c was off)
    await week.at(berlin(2, 23))
    await week.by_hand("b", "ACTIVE")  # Monday 23:00, in the console
    await week.tick(berlin(2, 23, 4))
    await week.fire_and_act(berlin(3, 8), "morning-start", start)  # Tue: a only (b is running)
    await week.fire_and_act(berlin(3, 20), "nightly-stop", stop)  # Tue: a and b
    await week.tick(berlin(4, 8))  # Wednesday is a holiday: no start, no stop
    await week.tick(berlin(4, 20))
    await week.fire_and_act(berlin(5, 8), "morning-start", start)  # Thu
    await week.fire_and_act(berlin(5, 20), "nightly-stop", stop)
    await week.fire_and_act(berlin(6, 8), "morning-start", start)  # Fri
    await week.fire_and_act(berlin(6, 20), "nightly-stop", stop)
    await week.fire_and_act(berlin(9, 8), "morning-start", start)  # the next Monday
    await week.tick(berlin(9, 9))

    # By hand, in minutes (stops recorded at 20:02, starts at 08:03):
    #   a: Mon 20:02-Tue 08:03 721, Tue 20:02-Thu 08:03 2161, Thu-Fri 721, Fri-Mon 3601 = 7204
    #   b: Mon 20:02-23:00 178 (started by hand), then 2161 + 721 + 3601              = 6661
    #   c: stopped before, never by fleet                                              =    0
    reports = Reports(week.tracking, Prices("EUR", {"ecs-sim": {"s6.large.2": 0.10}}), week.clock)
    got = await reports.savings(berlin(2, 0), berlin(10, 0), "policy")
    (row,) = got.rows
    assert row.key == "nightly-stop"
    # the simulator's clock is set to within a second of the policies' (its answer has seconds)
    assert abs(row.seconds - (7204 + 6661) * 60) < 1
    assert round(row.seconds / 60) == 7204 + 6661
    assert row.servers == {("ecs-sim", "a"), ("ecs-sim", "b")}
    assert row.bound_seconds == 0 and row.unpriced_seconds == 0
    assert row.to_json()["cost"] == round((7204 + 6661) / 60 * 0.10, 2) == 23.11

    by_day = {r.key: round(r.seconds / 60) for r in (await reports.savings(
        berlin(2, 0), berlin(10, 0), "day", "Europe/Berlin")).rows}  # fmt: skip
    assert by_day["2036-06-02"] == (24 * 60 - (20 * 60 + 2)) + 178  # a: 238, b: 178
    assert by_day["2036-06-04"] == 2 * 24 * 60  # the holiday: both stopped all day
    assert by_day["2036-06-09"] == 2 * (8 * 60 + 3)

    (drift,) = await week.tracking.list_drift()
    assert (drift.drift.server_id, drift.drift.kind) == ("b", "left")
    assert drift.drift.changed_at is not None
    assert timedelta(0) <= drift.drift.changed_at - berlin(2, 23) < timedelta(seconds=1)
