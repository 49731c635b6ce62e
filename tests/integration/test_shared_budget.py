"""Budgets shared by several processes on one PostgreSQL database (`jobs.sharedlimit`,
`jobs.store.budgets`): limiters with ledgers of their own (as replicas would have) together never
let more than a key's limit be in force, and a dead worker's calls in flight stop counting once
the reaper has seen its lock gone.

The "server" here is the block each call runs under `sending()`: it notes its receive time; the
test then checks every window of the period at those times, as the simulator does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobs.clock import SystemClock
from jobs.ratelimit import Budget, RateLimiter, Unit
from jobs.sharedlimit import SharedRateLimiter
from jobs.store import SqlJobStore, budgets
from jobs.store.budgets import SqlLedger
from jobs.store.db import Database
from jobs.store.identity import worker_identity
from jobs.store.migrate import upgrade

KEY = "nova:action"
LIMIT, PERIOD = 6, 0.5


def max_in_window(times: list[float], period: float) -> int:
    times = sorted(times)
    best = start = 0
    for end, at in enumerate(times):
        while times[start] <= at - period:
            start += 1
        best = max(best, end - start + 1)
    return best


async def _replica(
    store: SqlJobStore, worker: str, budgets: list[Budget]
) -> tuple[RateLimiter, SqlLedger]:
    clock = SystemClock()
    ledger = SqlLedger(store.db, worker, clock)
    limiter = SharedRateLimiter(clock, ledger)
    limiter.configure(KEY, budgets)
    return limiter, ledger


async def _call(limiter: RateLimiter, received: list[float], servers: int = 1) -> None:
    async with limiter.sending(KEY, servers):
        await asyncio.sleep(0.003)  # the request on its way
        received.append(time.monotonic())
        await asyncio.sleep(0.01)  # the answer on its way back


@pytest.mark.timeout(120)
async def test_three_limiters_on_one_database_hold_one_limit(pg_url: str) -> None:
    await asyncio.to_thread(upgrade, pg_url)
    store = SqlJobStore(pg_url)
    try:
        replicas = [await _replica(store, f"r{i}", [Budget(LIMIT, PERIOD)]) for i in range(3)]
        received: list[float] = []
        started = time.monotonic()
        calls = [_call(limiter, received) for limiter, _ in replicas for _ in range(20)]
        await asyncio.gather(*calls)
        elapsed = time.monotonic() - started
        for _, ledger in replicas:
            await ledger.close()
    finally:
        await store.close()
    assert len(received) == 60
    assert max_in_window(received, PERIOD) <= LIMIT
    # the limit, not the coordination, sets the pace: 60 calls at 6 per 0.5 s need 4.5 s or more
    assert 4.5 <= elapsed < 9.0, elapsed


@pytest.mark.timeout(120)
async def test_a_servers_budget_is_shared_too(pg_url: str) -> None:
    await asyncio.to_thread(upgrade, pg_url)
    store = SqlJobStore(pg_url)
    budget = Budget(10, PERIOD, Unit.SERVERS)
    try:
        replicas = [await _replica(store, f"s{i}", [budget]) for i in range(2)]
        received: list[tuple[float, int]] = []

        async def call(limiter: RateLimiter, servers: int) -> None:
            async with limiter.sending(KEY, servers):
                received.append((time.monotonic(), servers))

        await asyncio.gather(
            *(call(limiter, 1 + n % 4) for limiter, _ in replicas for n in range(12))
        )
    finally:
        await store.close()
    for at, _ in received:
        in_window = sum(s for t, s in received if at - PERIOD < t <= at)
        assert in_window <= 10


@pytest.mark.timeout(120)
async def test_a_dead_workers_calls_in_flight_end_when_the_reaper_sees_its_lock_gone(
    pg_url: str,
) -> None:
    await asyncio.to_thread(upgrade, pg_url)
    store = SqlJobStore(pg_url, locked_workers=True)
    try:
        async with worker_identity(pg_url, "alive"):
            alive, _ = await _replica(store, "alive", [Budget(2, 60.0)])
            dead, _ = await _replica(store, "dead", [Budget(2, 60.0)])
            # "dead" took the whole budget and never answers (no lock: as if killed)
            await dead.acquire(KEY, until_done=True)
            await dead.acquire(KEY, until_done=True)
            waiter = asyncio.ensure_future(alive.acquire(KEY, until_done=True))
            await asyncio.sleep(0.3)
            assert not waiter.done()  # the other process's calls in flight count
            now = datetime.now(UTC)
            await store.reap(now, "alive")
            async with store.db.read() as conn:
                rows = (
                    await conn.execute(sa.text("SELECT worker, ended_at FROM rate_grants"))
                ).all()
            assert {r.worker for r in rows if r.ended_at is not None} == {"dead"}
            # ended now, they count for the period from now: still no room for "alive"
            await asyncio.sleep(0.3)
            assert not waiter.done()
            waiter.cancel()
    finally:
        await store.close()


class _Racing:
    """The ledger's database with the interleaving that once let one call too many through: the
    write of an answer commits after an exchange's read took its snapshot (the row still in
    flight there) and before that exchange decides."""

    def __init__(self, db: Database, ledger: SqlLedger) -> None:
        self.db, self.ledger = db, ledger
        self.is_postgres = True
        self.armed = False
        self.loaded = asyncio.Event()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[_RacingConn]:
        async with self.db.write() as conn:
            yield _RacingConn(conn, self)


class _RacingConn:
    def __init__(self, conn: AsyncConnection, race: _Racing) -> None:
        self.conn, self.race = conn, race

    async def execute(self, statement: Any, params: Any = None) -> Any:
        race = self.race
        if race.armed and statement is budgets._END_ONE:
            await race.loaded.wait()
        result = await self.conn.execute(statement, params)
        if race.armed and statement is budgets._LOAD:
            race.loaded.set()
            flusher = race.ledger._flusher
            assert flusher is not None
            await asyncio.shield(flusher)  # the answer is written and forgotten before deciding
        return result


@pytest.mark.timeout(60)
async def test_an_answer_written_during_an_exchange_still_counts(pg_url: str) -> None:
    await asyncio.to_thread(upgrade, pg_url)
    store = SqlJobStore(pg_url)
    try:
        limiter, ledger = await _replica(store, "racer", [Budget(2, 60.0)])
        race = _Racing(store.db, ledger)
        ledger._db = race  # type: ignore[assignment]
        await limiter.acquire(KEY, until_done=True)
        await limiter.acquire(KEY, until_done=True)
        limiter.done(KEY)  # one answer came back: it still counts for 60 s
        race.armed = True
        third = asyncio.ensure_future(limiter.acquire(KEY, until_done=True))
        await asyncio.sleep(0.5)
        granted = third.done()
        third.cancel()
        await ledger.close()
    finally:
        await store.close()
    assert race.loaded.is_set()  # the interleaving happened
    assert not granted  # two calls in force: no room for a third within the 60 s
