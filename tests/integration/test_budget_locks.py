"""Every process that writes shared-budget rows holds the lock the reaper judges them by (D81):
a process without an engine (`fleet serve --role api`: dry-run quota reads, flavor reads, the
admission's reads of the cloud) has calls in flight that an engine's reaper on the same database
must not end early, and that every replica's grants count until their answers.

Each `open_fleet` below opens its own connections and takes its own locks, as a process would.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from fleet.service import REAP_SHARED, Fleet, open_fleet
from fleet.settings import Settings, load_with_defaults
from jobs.clock import SystemClock
from jobs.ratelimit import Budget
from jobs.sharedlimit import SharedRateLimiter
from jobs.store import SqlJobStore
from jobs.store.budgets import SqlLedger
from jobs.store.liveness import held_locks, lock_parts
from jobs.store.migrate import upgrade

KEY = "test:read"


def _settings(url: str, worker: str) -> Settings:
    return load_with_defaults(
        [],
        {
            "FLEET_DATABASE__URL": url,
            "FLEET_ENGINE__WORKER": worker,
            "FLEET_POLICIES__ENABLED": "false",
            "FLEET_WEBHOOKS__ENABLED": "false",
        },
    )


async def _grants(fleet: Fleet) -> list[sa.Row[tuple[str, datetime | None]]]:
    async with fleet.store.db.read() as conn:
        query = sa.text("SELECT worker, ended_at FROM rate_grants WHERE rate_key = :k ORDER BY id")
        return list((await conn.execute(query, {"k": KEY})).all())


async def _locked(fleet: Fleet, names: set[str]) -> set[str]:
    async with fleet.store.db.read() as conn:
        held = await held_locks(conn)
    return {name for name in names if lock_parts(name) in held}


@pytest.mark.timeout(120)
async def test_an_api_process_call_in_flight_is_not_reaped_and_keeps_counting(pg_url: str) -> None:
    budget = [Budget(1, 0.5)]
    async with (
        open_fleet(_settings(pg_url, "api-1"), engine=False) as api,
        open_fleet(_settings(pg_url, "engine-1")) as engine,
    ):
        assert isinstance(api.limiter, SharedRateLimiter)
        api.limiter.configure(KEY, budget)
        engine.limiter.configure(KEY, budget)
        sent, answered = asyncio.Event(), asyncio.Event()

        async def api_call() -> None:  # e.g. a dry run's quota read, waiting for the cloud
            async with api.limiter.sending(KEY):
                sent.set()
                await answered.wait()

        call = asyncio.create_task(api_call())
        await sent.wait()
        await engine.store.reap(datetime.now(UTC), "engine-1")
        waiter = asyncio.ensure_future(engine.limiter.acquire(KEY))
        # the engine's own reaper looks meanwhile (every 2 s); the period is 0.5 s
        await asyncio.sleep(REAP_SHARED + 0.5)
        rows = await _grants(engine)
        assert [r.ended_at for r in rows] == [None]  # the API's call is still in flight
        assert rows[0].worker not in ("api-1", "engine-1")  # under a name of the API's own
        assert await _locked(engine, {rows[0].worker}) == {rows[0].worker}
        assert not waiter.done()  # and it counts: no room for the engine's call
        answered.set()
        await call
        await asyncio.wait_for(waiter, 5.0)  # a period after the answer, the engine's call goes
        assert [r.worker for r in await _grants(engine)][-1] == "engine-1"


@pytest.mark.timeout(120)
async def test_processes_without_an_engine_get_names_of_their_own_and_end_their_rows_on_exit(
    pg_url: str,
) -> None:
    settings = _settings(pg_url, "shared")  # one configuration for every process
    async with open_fleet(settings, engine=False) as one:
        async with contextlib.AsyncExitStack() as stack:
            two = await stack.enter_async_context(open_fleet(settings, engine=False))
            for fleet in (one, two):
                fleet.limiter.configure(KEY, [Budget(5, 60.0)])
                await fleet.limiter.acquire(KEY, until_done=True)  # in flight, never answered
            rows = await _grants(one)
            names = [r.worker for r in rows]
            assert len(set(names)) == 2 and "shared" not in names
            assert await _locked(one, set(names)) == set(names)
        # the second process stopped with its call in flight: its row ended, its lock released
        rows = await _grants(one)
        assert rows[0].ended_at is None and rows[1].ended_at is not None
        assert await _locked(one, set(names)) == {names[0]}


@pytest.mark.timeout(120)
async def test_an_engines_own_call_in_flight_outlives_its_recovery(pg_url: str) -> None:
    """The drivers' discovery calls go through the ledger before the engine starts: recovery, run
    while one of them waits for its answer, leaves its row in flight for every replica."""
    async with open_fleet(_settings(pg_url, "engine-1")) as engine:
        clock = SystemClock()
        other = SharedRateLimiter(clock, SqlLedger(engine.store.db, "engine-2", clock))
        for limiter in (engine.limiter, other):
            limiter.configure(KEY, [Budget(1, 0.5)])
        async with engine.limiter.sending(KEY):  # a call of this life, waiting for the cloud
            await engine.store.recover("engine-1", datetime.now(UTC))  # what the start runs
            assert [(r.worker, r.ended_at) for r in await _grants(engine)] == [("engine-1", None)]
            waiter = asyncio.ensure_future(other.acquire(KEY))
            await asyncio.sleep(1.0)  # twice the period: the call still counts, no room
            assert not waiter.done()
        await asyncio.wait_for(waiter, 5.0)  # a period after the answer, the other's call goes


@pytest.mark.timeout(120)
async def test_a_killed_previous_lifes_calls_in_flight_end_when_its_name_starts_again(
    pg_url: str,
) -> None:
    await asyncio.to_thread(upgrade, pg_url)
    store = SqlJobStore(pg_url)
    try:  # the previous life of "engine-1": a call in flight, then killed (no close, no lock)
        clock = SystemClock()
        previous = SharedRateLimiter(clock, SqlLedger(store.db, "engine-1", clock))
        previous.configure(KEY, [Budget(1, 60.0)])
        await previous.acquire(KEY, until_done=True)
    finally:
        await store.close()
    async with open_fleet(_settings(pg_url, "engine-1")) as engine:
        rows = await _grants(engine)
        assert [r.worker for r in rows] == ["engine-1"] and rows[0].ended_at is not None


async def test_on_sqlite_a_process_without_an_engine_holds_no_lock(sqlite_url: str) -> None:
    async with open_fleet(_settings(sqlite_url, "api-1"), engine=False) as api:
        assert api.identity is None
        assert not isinstance(api.limiter, SharedRateLimiter)
