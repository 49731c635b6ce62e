"""On PostgreSQL with `locked_workers`, the reaper takes over at once what a worker whose name's
advisory lock nobody holds had (it died), and leaves a live worker's rows alone, before any lease
expires (`jobs.store.liveness`, decision D61)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from jobs_store_helpers import T0, TTL, claim_one, plan_operation
from test_jobs_store import claim_request

from jobs.states import State
from jobs.store import SqlJobStore
from jobs.store.identity import worker_identity
from jobs.testing import items


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[SqlJobStore]:
    s = SqlJobStore(pg_url, locked_workers=True)
    await s.create_schema()
    try:
        yield s
    finally:
        await s.close()


async def test_a_dead_workers_rows_move_at_once_a_live_ones_stay(
    pg_store: SqlJobStore, pg_url: str
) -> None:
    store = pg_store
    op = await plan_operation(store, items(4))
    async with worker_identity(pg_url, "alive"):
        for name in ("alive", "dead"):
            await store.register_worker(name, "host", 1, T0, T0 + TTL)
            batch = await claim_one(store, claim_request(op.id, cap=2, worker=name), [10])
            assert batch is not None and len(batch.subjobs) == 2
        # long before any lease expires: "dead" holds no lock, "alive" does
        assert await store.reap(T0, "reaper") == 2
        rows = (await store.list_subjobs(op.id, None, None, 10)).items
        moved = [s for s in rows if s.state is State.PENDING]
        assert len(moved) == 2 and all(s.verify_first for s in moved)
        assert sum(1 for s in rows if s.state is State.DISPATCHING) == 2  # alive's
        assert await store.reap(T0, "reaper") == 0  # nothing more: its worker row is gone


async def test_without_locked_workers_only_leases_count(pg_url: str) -> None:
    store = SqlJobStore(pg_url)
    await store.create_schema()
    try:
        op = await plan_operation(store, items(2))
        await store.register_worker("dead", "host", 1, T0, T0 + TTL)
        assert await claim_one(store, claim_request(op.id, worker="dead"), [10]) is not None
        assert await store.reap(T0, "reaper") == 0  # engines that hold no lock: leases only
    finally:
        await store.close()
