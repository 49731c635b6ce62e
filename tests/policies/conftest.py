"""Fixtures for policy tests: a migrated database (SQLite or PostgreSQL), a fake clock, a fake
cloud, and a `PolicyService` over them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from fleet.engine.admission import Admission
from fleet.policies.firing import Firing
from fleet.policies.ports import OperationsPort
from fleet.policies.records import FireRecord
from fleet.policies.service import PolicyService
from fleet.policies.store import PolicyStore
from jobs.clock import FakeClock
from jobs.operations import Operations
from jobs.store import SqlJobStore
from jobs.store.migrate import upgrade
from tests.policies.fakes import FakeCloud, FakeOperations

START = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass
class Env:
    url: str
    jobs: SqlJobStore
    store: PolicyStore
    clock: FakeClock
    cloud: FakeCloud
    operations: OperationsPort
    service: PolicyService

    def replica(self, worker: str) -> PolicyService:
        """Another process's service on the same database and cloud."""
        return service_for(self, worker)

    async def at(self, when: datetime) -> None:
        """Move the fake clock forward to `when`."""
        await self.clock.advance((when - self.clock.now()).total_seconds())

    async def tick_at(self, when: datetime) -> None:
        await self.at(when)
        await self.service.tick()

    async def fires(self, policy_id: str) -> list[FireRecord]:
        return list(reversed(await self.store.list_fires(policy_id, 10_000)))


def service_for(
    env: Env, worker: str, calendars: Mapping[str, frozenset[date]] | None = None
) -> PolicyService:
    inventory = env.cloud.inventory()
    admission = Admission(inventory, ceiling=lambda _names: None)  # type: ignore[arg-type]
    firing = Firing(env.store, env.operations, inventory, env.clock, worker, admission=admission)
    return PolicyService(env.store, env.operations, inventory, env.clock, worker, calendars, firing)


async def _env(url: str, fake_engine: bool) -> AsyncIterator[Env]:
    await asyncio.to_thread(upgrade, url)
    jobs = SqlJobStore(url)
    clock = FakeClock(START)
    cloud = FakeCloud()
    cloud.servers["ecs"] = {}  # one endpoint, empty until a test adds servers
    operations: OperationsPort = FakeOperations(cloud) if fake_engine else Operations(jobs, clock)
    env = Env(url, jobs, PolicyStore(jobs.db), clock, cloud, operations, None)  # type: ignore[arg-type]
    env.service = service_for(env, "w1")
    try:
        yield env
    finally:
        await jobs.close()


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[Env]:
    """The real engine's operations on SQLite and on PostgreSQL (nothing runs them)."""
    async for e in _env(db_url, fake_engine=False):
        yield e


@pytest.fixture
async def fake_env(sqlite_url: str) -> AsyncIterator[Env]:
    """A fake engine that really changes the fake cloud (restore needs results)."""
    async for e in _env(sqlite_url, fake_engine=True):
        yield e
