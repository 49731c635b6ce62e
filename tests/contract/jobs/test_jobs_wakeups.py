"""Replicas on one PostgreSQL database wake each other's loops (LISTEN/NOTIFY, D97).

Each test's runtime idles for a minute on its own; what another process does reaches it only by
a notification, or, when the notification is lost, by the fallback (`listen_idle`). Every wait
is bounded, so a runtime that was not woken fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from jobs_store_helpers import WORKER
from sqlalchemy.ext.asyncio import create_async_engine

from jobs.config import EngineConfig
from jobs.loops.runtime import Runtime
from jobs.outcomes import Completed
from jobs.plan import EtaInputs, PlanBuilder
from jobs.ports import ActionProfile, NewSubJob, PlanItem, PlanProgress, StepProfile, Wakeups
from jobs.records import NewOperation, OperationRecord
from jobs.states import OperationState
from jobs.store import SqlJobStore
from jobs.store.notify import EVERY, PLANNING, PgListener
from jobs.testing import FakeExecutor, FakePlanner, FakeRateLimiter, items

pytestmark = [pytest.mark.contract, pytest.mark.postgres]

LONG = 60.0  # the idle intervals a test's notifications (or the fallback) must beat


def config(
    listen_idle: float = LONG, plan_idle: float = LONG, dispatch_idle: float = 0.05
) -> EngineConfig:
    """The planner idles for a minute; dispatch and polling idle briefly (0.05 s) while an
    operation runs, and `listen_idle` while none does."""
    return EngineConfig(
        worker=WORKER,
        poll_interval=1.0,  # polls come due with time: no notification says so
        plan_idle=plan_idle,
        dispatch_idle=dispatch_idle,
        poll_idle=0.05,
        reap_interval=LONG,
        listen_idle=listen_idle,
        lease_ttl=30.0,
        drain_grace=5.0,
    )


@pytest.fixture
async def stores(pg_url: str) -> AsyncIterator[tuple[SqlJobStore, SqlJobStore]]:
    """Two processes' stores on one database: the runtime's, and another replica's."""
    mine, other = SqlJobStore(pg_url), SqlJobStore(pg_url)
    await mine.create_schema()
    try:
        yield mine, other
    finally:
        await other.close()
        await mine.close()


class Deaf:
    """A listener whose every notification is lost: only the fallback finds new work."""

    listening = True

    async def start(self, wake: Callable[[str], None]) -> None:
        return None

    async def stop(self) -> None:
        return None


def runtime(store: SqlJobStore, cfg: EngineConfig, wakeups: Wakeups) -> Runtime:
    fake = FakeExecutor(default_profile=ActionProfile((StepProfile(5),), poll_batch=20))
    return Runtime(
        store, FakePlanner(items(6)), fake, FakeRateLimiter(), config=cfg, wakeups=wakeups
    )


async def created_elsewhere(other: SqlJobStore) -> str:
    op, _ = await other.create_operation(
        NewOperation(kind="stop", created_by="api"), datetime.now(UTC)
    )
    return op.id


async def finished_within(store: SqlJobStore, op_id: str, seconds: float) -> OperationState:
    async with asyncio.timeout(seconds):
        while True:
            view = await store.get_view(op_id)
            if view is not None and view.operation.finished_at is not None:
                return view.state
            await asyncio.sleep(0.02)


async def test_an_operation_created_by_another_replica_is_planned_at_once_by_its_notification(
    stores: tuple[SqlJobStore, SqlJobStore], pg_url: str
) -> None:
    mine, other = stores
    async with runtime(mine, config(), PgListener(pg_url)) as running:
        assert running.wakeups is not None and running.wakeups.listening
        await asyncio.sleep(0.5)  # the rounds that follow connecting are over: every loop idles
        op_id = await created_elsewhere(other)
        # planned though the planner idles for a minute; then dispatched and polled to the end,
        # the polls coming due a second after each answer (short idle while it runs)
        assert await finished_within(mine, op_id, 15.0) is OperationState.SUCCEEDED


async def planned_elsewhere(
    other: SqlJobStore, now: datetime, count: int
) -> tuple[OperationRecord, PlanBuilder, list[NewSubJob]]:
    """A stop another replica ("worker-b") created and holds the planning lease of, and the
    `count` rows its plan makes (not written yet)."""
    op, _ = await other.create_operation(NewOperation(kind="stop", created_by="api"), now)
    claimed = await other.claim_planning("worker-b", now, now + timedelta(seconds=60))
    assert claimed is not None and claimed.id == op.id
    builder = PlanBuilder()
    rows = [r for e in items(count) if isinstance(e, PlanItem) and (r := builder.add(e))]
    return claimed, builder, rows


async def test_an_operation_another_replica_planned_is_dispatched_at_once_by_its_notification(
    stores: tuple[SqlJobStore, SqlJobStore], pg_url: str
) -> None:
    mine, other = stores
    now = datetime.now(UTC)
    claimed, builder, rows = await planned_elsewhere(other, now, 6)
    op = claimed
    await other.insert_subjobs(claimed, rows, "worker-b", now, now + timedelta(seconds=60))
    eta = EtaInputs(ActionProfile((StepProfile(5),)), claimed.strategy, 5.0, lambda k: ())
    async with runtime(mine, config(), PgListener(pg_url)):
        await asyncio.sleep(0.5)  # nothing runs yet: dispatch and polling idle for a minute
        assert await other.finish_planning(op.id, builder.summary(eta), "worker-b", now)
        assert await finished_within(mine, op.id, 15.0) is OperationState.SUCCEEDED


async def test_rows_another_replica_shows_while_it_lists_are_dispatched_at_once(
    stores: tuple[SqlJobStore, SqlJobStore], pg_url: str
) -> None:
    """An operation another replica dispatches while it lists (D101): each planning write that
    shows more rows wakes this replica's dispatcher, which otherwise idles a minute."""
    mine, other = stores
    now = datetime.now(UTC)
    claimed, builder, rows = await planned_elsewhere(other, now, 12)
    op, keys = claimed, builder.rate_keys
    fake = FakeExecutor(default_profile=ActionProfile((StepProfile(5),), poll_batch=20))
    fake.script = {r.target_id: [Completed()] for r in rows}  # done when sent: no poll wakes it
    rt = Runtime(
        mine, FakePlanner(items(1)), fake, FakeRateLimiter(), config=config(dispatch_idle=LONG),
        wakeups=PgListener(pg_url),
    )  # fmt: skip
    until = now + timedelta(seconds=60)

    async def sent(count: int) -> None:
        async with asyncio.timeout(10):
            while True:
                if sum(len(t) for _, _, t in fake.calls) >= count:
                    return
                await asyncio.sleep(0.02)

    async with rt:
        await asyncio.sleep(0.5)  # the rounds that follow connecting are over: every loop idles
        shown = PlanProgress(targets=5, skipped=0, rate_keys=keys)
        await other.insert_subjobs(claimed, rows[:6], "worker-b", now, until, shown)
        await sent(5)  # opened: told by its `operation.planned`
        await asyncio.sleep(0.5)  # this replica's dispatcher idles again
        more = PlanProgress(targets=10, skipped=0, rate_keys=keys)
        await other.insert_subjobs(claimed, rows[6:11], "worker-b", now, until, more)
        await sent(10)  # told by the write that showed them, not by the listing's end
        eta = EtaInputs(ActionProfile((StepProfile(5),)), claimed.strategy, 5.0, lambda k: ())
        await other.insert_subjobs(claimed, rows[11:], "worker-b", now, until)
        assert await other.finish_planning(op.id, builder.summary(eta), "worker-b", now)
        assert await finished_within(mine, op.id, 15.0) is OperationState.SUCCEEDED


async def test_a_lost_notification_is_made_up_for_by_the_fallback(
    stores: tuple[SqlJobStore, SqlJobStore],
) -> None:
    mine, other = stores
    async with runtime(mine, config(listen_idle=0.5), Deaf()):
        await asyncio.sleep(0.3)
        op_id = await created_elsewhere(other)
        assert await finished_within(mine, op_id, 15.0) is OperationState.SUCCEEDED


async def _terminate_listeners(pg_url: str) -> int:
    engine = create_async_engine(pg_url)
    try:
        async with engine.connect() as conn:
            stmt = sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND (query LIKE 'LISTEN%' OR query = 'SELECT 1')"
            )
            return int((await conn.execute(stmt)).scalar_one())
    finally:
        await engine.dispose()


class Heard:
    """The topics a listener handed over, in order, and a way to wait for more."""

    def __init__(self) -> None:
        self.topics: list[str] = []
        self._more = asyncio.Event()

    def __call__(self, topic: str) -> None:
        self.topics.append(topic)
        self._more.set()

    async def until(self, check: Callable[[list[str]], bool], seconds: float = 10.0) -> None:
        async with asyncio.timeout(seconds):
            while not check(self.topics):
                self._more.clear()
                await self._more.wait()


async def test_a_listener_whose_connection_is_lost_listens_again(
    stores: tuple[SqlJobStore, SqlJobStore], pg_url: str
) -> None:
    _, other = stores
    heard = Heard()
    listener = PgListener(pg_url, retry=0.1)
    await listener.start(heard)
    try:
        assert listener.listening and heard.topics == [EVERY]
        assert await _terminate_listeners(pg_url) == 1
        # lost, then listening again, and every loop woken once for what it may have missed
        await heard.until(lambda topics: topics.count(EVERY) == 2)
        assert listener.listening
        await created_elsewhere(other)
        await heard.until(lambda topics: PLANNING in topics)
    finally:
        await listener.stop()
    assert not listener.listening
