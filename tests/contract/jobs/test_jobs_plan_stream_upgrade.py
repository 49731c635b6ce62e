"""During a rolling upgrade an operation is opened to dispatch while it is listed (D101) only
when every live replica understands it: a replica of an earlier release (its `workers` row
without `release`) would finish it as soon as the rows written so far are done, and the rest
would be lost. A single process on SQLite is always of this release."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa
from jobs_store_helpers import T0, WORKER, Harness
from plan_stream_helpers import PROFILE, PagedPlanner

from jobs.states import OperationState, State
from jobs.store import SqlJobStore
from jobs.store.leases import RELEASE
from jobs.store.models import WORKERS
from jobs.testing import FakeExecutor, items

pytestmark = pytest.mark.contract


async def _other_replica(store: SqlJobStore, release: int | None, ttl: float) -> None:
    """Another replica's `workers` row, alive for `ttl` seconds after T0."""
    async with store.db.write() as conn:
        await conn.execute(
            WORKERS.insert().values(
                id="replica-b",
                hostname="b",
                pid=2,
                started_at=T0,
                heartbeat_at=T0,
                expires_at=T0 + timedelta(seconds=ttl),
                draining=False,
                release=release,
            )
        )


async def _opened_while_listed(store: SqlJobStore) -> bool:
    """Plan an operation of five servers listed in two pages (four, then one); whether its
    first three were sent before the second page was listed. Either way it ends with all five
    done once."""
    planner = PagedPlanner(items(5), 4)
    h = Harness(store, planner=planner, executor=FakeExecutor(default_profile=PROFILE))
    op = await h.create()
    planning = asyncio.create_task(h.planning.run_once())
    async with asyncio.timeout(10):
        await planner.waiting.wait()
    sent = 0
    for _ in range(20):
        await asyncio.sleep(0.01)
        sent += await h.dispatcher.run_once()
    await h.dispatcher.wait_idle()
    opened = (await h.ops.get(op.id)).operation.planned_at is not None
    assert opened == (sent > 0)
    planner.release.set()
    async with asyncio.timeout(10):
        await planning
    view = await h.run(op.id)
    assert view.state is OperationState.SUCCEEDED
    assert view.counts == {State.SUCCEEDED: 5}
    assert h.executor.sent_twice() == []
    return opened


async def test_a_live_replica_of_an_earlier_release_keeps_the_plan_whole(
    store: SqlJobStore,
) -> None:
    await _other_replica(store, release=None, ttl=3600)
    assert await _opened_while_listed(store) is not store.db.is_postgres


@pytest.mark.parametrize(
    ("release", "ttl"), [(RELEASE, 3600), (None, -1)], ids=["this_release", "expired_row"]
)
async def test_replicas_that_understand_it_or_are_gone_let_it_open(
    store: SqlJobStore, release: int | None, ttl: float
) -> None:
    await _other_replica(store, release=release, ttl=ttl)
    assert await _opened_while_listed(store)


async def test_a_replica_registers_and_beats_with_its_release(store: SqlJobStore) -> None:
    await store.register_worker(WORKER, "a", 1, T0, T0 + timedelta(seconds=60))
    assert await store.every_replica_streams(T0)
    async with store.db.write() as conn:  # as a replica of the earlier release writes it
        await conn.execute(sa.update(WORKERS).values(release=None))
    assert await store.every_replica_streams(T0) is not store.db.is_postgres
    await store.renew_leases(WORKER, T0, T0 + timedelta(seconds=60))  # restarted: this release
    assert await store.every_replica_streams(T0)
    async with store.db.read() as conn:
        assert (await conn.execute(sa.select(WORKERS.c.release))).scalars().all() == [RELEASE]
