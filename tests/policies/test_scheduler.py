"""`run_policies` with APScheduler and the real clock (SQLite: always the leader): the wake-ups
land on the slots, each slot fires once, and a policy created through the service is picked up."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from fleet.engine.admission import Admission
from fleet.policies.files import PolicySet
from fleet.policies.model import Policy, compile_policy, parse_spec
from fleet.policies.records import FireRecord, FireStatus
from fleet.policies.scheduler import run_policies
from fleet.policies.service import PolicyService
from fleet.policies.targets import ServerLister
from fleet.settings import DatabaseSpec, Settings
from jobs.operations import Operations
from jobs.store import SqlJobStore
from jobs.store.migrate import upgrade
from tests.policies.fakes import FakeCloud

EVERY_SECOND: dict[str, object] = {
    "name": "fast",
    "cron": "* * * * * *",
    "timezone": "Europe/Berlin",
    "action": "stop",
    "targets": {"endpoints": ["ecs"]},
    "dry_run_only": True,
    "misfire_grace": "30s",
}


@dataclass
class Parts:
    settings: Settings
    store: SqlJobStore
    drivers: Mapping[str, ServerLister]
    operations: Operations

    @property
    def admission(self) -> Admission:
        return Admission(self.drivers)  # type: ignore[arg-type]


@pytest.fixture
async def parts(sqlite_url: str) -> AsyncIterator[Parts]:
    await asyncio.to_thread(upgrade, sqlite_url)
    store = SqlJobStore(sqlite_url)
    cloud = FakeCloud()
    cloud.add("ecs", "s1")
    settings = Settings(database=DatabaseSpec(url=sqlite_url))
    try:
        yield Parts(settings, store, cloud.inventory(), Operations(store))
    finally:
        await store.close()


async def wait_for_fires(service: PolicyService, policy_id: str, count: int) -> list[FireRecord]:
    async with asyncio.timeout(60):
        while True:
            fires = await service.fires(policy_id, limit=500)
            if sum(f.status is FireStatus.FIRED for f in fires) >= count:
                return list(reversed(fires))
            await asyncio.sleep(0.1)


async def test_wake_ups_fire_every_slot_once(parts: Parts) -> None:
    policies = PolicySet((compile_policy(parse_spec(EVERY_SECOND)),))
    async with run_policies(parts, policies, sweep_interval=600, leader_retry=0.2) as service:
        fires = await wait_for_fires(service, "fast", 4)
    fired = [f for f in fires if f.status is FireStatus.FIRED]
    slots = [f.scheduled_at for f in fired]
    assert slots == sorted(set(slots))
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(slots))
    ops = (await parts.operations.list(limit=1000)).items
    assert sorted(v.operation.idempotency_key or "" for v in ops) == sorted(
        f.idempotency_key for f in fired
    )
    assert all(v.operation.dry_run for v in ops)


async def test_a_policy_created_through_the_service_is_scheduled(parts: Parts) -> None:
    async with run_policies(parts, PolicySet(), sweep_interval=600, leader_retry=0.2) as service:
        await service.create_policy(EVERY_SECOND | {"name": "added"}, by="admin")
        fires = await wait_for_fires(service, "added", 2)
    assert {f.policy_id for f in fires} == {"added"}


async def test_stopping_waits_for_a_sweep_under_way(
    parts: Parts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep still reading when the policies stop is cancelled and waited for: once
    `run_policies` has returned, none of the database's connections is still out (the service
    disposes of its engine next; a connection out then is never closed)."""
    reading = asyncio.Event()

    async def tick(now: datetime | None = None) -> list[Policy]:
        async with parts.store.db.read() as conn:
            await conn.execute(sa.select(1))
            reading.set()
            try:
                await asyncio.Event().wait()  # still reading when the policies stop
            finally:
                await asyncio.sleep(0.1)  # unwinding takes a moment (a rollback, a busy machine)
        return []

    async with run_policies(parts, PolicySet(), sweep_interval=600, leader_retry=0.2) as service:
        monkeypatch.setattr(service, "tick", tick)  # before the first sweep starts
        async with asyncio.timeout(30):
            await reading.wait()
    assert parts.store.db.engine.pool.checkedout() == 0
