"""During a rolling upgrade an operation is opened to dispatch while it is listed (D101) only
when every live replica understands it: a replica of an earlier release (its `workers` row
without `release`) would finish it as soon as the rows written so far are done, and the rest
would be lost. A single process on SQLite is always of this release. A process of an earlier
release that has no `workers` row (serving the API only) cannot finish it either: while its
listing is open, the last row written stays pending and unshown."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa
from jobs_store_helpers import T0, WORKER
from plan_stream_helpers import first_rows_sent, listing_fails, paged

from jobs.states import ACTIVE, OperationState, State
from jobs.store import SqlJobStore
from jobs.store.leases import RELEASE
from jobs.store.models import OPERATIONS, SUBJOBS, WORKERS
from jobs.testing import items

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
    planner, h, op = await paged(store, items(5), 4)
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


async def _settle_as_an_earlier_release(store: SqlJobStore, operation_id: str) -> bool:
    """What an earlier release's settle does with a planned operation (a process of it takes
    no `workers` row when it serves the API only, so no replica check sees it: a resume, a
    retry through it): it finishes the operation when none of its rows is active, knowing
    nothing of an open listing. Whether it finished it."""
    s, now = SUBJOBS.c, T0 + timedelta(hours=1)
    active = sa.select(sa.func.count()).where(
        s.operation_id == operation_id, s.state.in_([a.value for a in ACTIVE])
    )
    async with store.db.write() as conn:
        await store.db.lock_operations(conn, [operation_id])
        if await conn.scalar(active):
            return False
        await conn.execute(
            sa.update(OPERATIONS)
            .where(OPERATIONS.c.id == operation_id, OPERATIONS.c.finished_at.is_(None))
            .values(finished_at=now, updated_at=now)
        )
    return True


async def test_an_earlier_release_cannot_finish_it_while_its_listing_is_open(
    store: SqlJobStore,
) -> None:
    """Its rows shown are all done and its listing is postponed: one row written is still
    pending and unshown, so an earlier release's rule (no active row: finished) leaves it
    open, and the next attempt lists the rest."""
    planner, h, op = await paged(store, items(8), 5)
    planning = await first_rows_sent(h, planner)
    await listing_fails(planner, planning, RuntimeError("page 2: 503"))  # the listing is postponed
    await h.clock.advance(h.config.poll_interval)
    await h.poller.run_once()
    view = await h.ops.get(op.id)
    shown = view.operation.targets
    assert view.state is OperationState.RUNNING
    assert view.counts[State.SUCCEEDED] == shown  # every row shown is done
    assert sum(view.counts.values()) == 5  # the rows written before the page that failed
    s = SUBJOBS.c
    unshown = sa.select(sa.func.count()).where(
        s.operation_id == op.id, s.state == State.PENDING.value, s.seq >= shown
    )
    async with store.db.read() as conn:
        assert await conn.scalar(unshown) >= 1
    assert not await _settle_as_an_earlier_release(store, op.id)
    assert (await h.ops.get(op.id)).operation.finished_at is None
    await h.clock.advance(h.config.plan_retry_delay * 2)
    view = await h.run(op.id)
    assert view.state is OperationState.SUCCEEDED
    assert view.counts == {State.SUCCEEDED: 8}
    assert h.executor.sent_twice() == []
