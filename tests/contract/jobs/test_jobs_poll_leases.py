"""Poll leases: the due AWAITING rows are leased once each, in the order they fall due (a cloud
job's rows together, job-less rows last), at most the limit, and a lease that ran out is taken
again. On PostgreSQL the rows are picked, leased and read back by one statement (its own
transaction); it was a probe, a locking SELECT and an UPDATE. On both databases."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta

import pytest
import sqlalchemy as sa
from jobs_store_helpers import T0, TTL, WORKER, claim_one, claim_request, executions, plan_operation

from jobs.clock import FakeClock
from jobs.config import EngineConfig
from jobs.loops.polling import Poller
from jobs.ports import SubJobOutcomes
from jobs.records import Batch, Change
from jobs.states import Event, State
from jobs.store import SqlJobStore
from jobs.store.models import SUBJOBS
from jobs.testing import FakeExecutor, items

pytestmark = pytest.mark.contract


async def _accepted(store: SqlJobStore, due: list[tuple[str | None, float]]) -> None:
    """One row per `(cloud job id, seconds after T0 its first poll is due)`, accepted and
    awaiting its poll (targets srv-00000 onwards, in that order)."""
    op = await plan_operation(store, items(len(due)))
    batch = await claim_one(store, claim_request(op.id, cap=len(due)), [10])
    assert batch is not None
    changes = [
        Change(
            sub.id,
            op.id,
            sub.target_id,
            State.DISPATCHING,
            Event.ACCEPT,
            values=(("cloud_job_id", job), ("not_before", T0 + timedelta(seconds=seconds))),
        )
        for sub, (job, seconds) in zip(batch.subjobs, due, strict=True)
    ]
    assert (await store.apply(changes, WORKER, T0)).applied == len(due)


async def _awaiting(store: SqlJobStore) -> list[str]:
    """Six rows awaiting their polls: a cloud job's due at T0 + 1 s, another's at 2 s, and
    job-less rows at 3 s; returns the targets in the order they fall due."""
    await _accepted(
        store, [(None, 3), ("job-b", 2), ("job-a", 1), (None, 3), ("job-a", 1), ("job-b", 2)]
    )
    return ["srv-00002", "srv-00004", "srv-00001", "srv-00005", "srv-00000", "srv-00003"]


async def test_due_rows_are_leased_once_in_the_order_they_fall_due(store: SqlJobStore) -> None:
    order = await _awaiting(store)
    at = T0 + timedelta(seconds=2)
    first = await store.claim_polls(WORKER, at, at + TTL, 3)
    assert [r.target_id for r in first] == order[:3]
    assert {(r.state, r.lease_owner, r.lease_expires_at) for r in first} == {
        (State.AWAITING, WORKER, at + TTL)
    }
    rest = await store.claim_polls("worker-b", at, at + TTL, 10)
    assert [r.target_id for r in rest] == order[3:4]  # the job-less rows are not due yet
    later = T0 + timedelta(seconds=3)
    assert [r.target_id for r in await store.claim_polls("worker-b", later, later + TTL, 10)] == (
        order[4:]
    )
    assert await store.claim_polls("worker-b", later, later + TTL, 10) == []
    expired = later + TTL + timedelta(seconds=1)
    again = await store.claim_polls("worker-c", expired, expired + TTL, 10)
    assert [r.target_id for r in again] == order  # every lease ran out
    rows = (await store.list_subjobs(again[0].operation_id, None, None, 10)).items
    assert {(r.lease_owner, r.lease_expires_at) for r in rows} == {("worker-c", expired + TTL)}


async def test_rows_due_by_the_lead_are_leased_ahead_and_a_held_lease_is_judged_now(
    store: SqlJobStore,
) -> None:
    order = await _awaiting(store)
    at = T0 + timedelta(milliseconds=1800)
    # nothing is due at 1.8 s; within 0.3 s of it, the rows of job-a (1 s) and job-b (2 s)
    ahead = await store.claim_polls(WORKER, at, at + TTL, 10, at + timedelta(milliseconds=300))
    assert [r.target_id for r in ahead] == order[:4]
    assert {r.lease_owner for r in ahead} == {WORKER}
    # job-less rows are not leased ahead (a group of them may fall due apart)
    early = at + timedelta(milliseconds=1000)
    assert await store.claim_polls("worker-b", early, early + TTL, 10, early + TTL) == []
    # a lease is free only once it has run out at `now`, however far ahead rows are leased:
    # worker-b takes the job-less rows, not those WORKER still holds
    soon = at + TTL - timedelta(seconds=1)
    taken = await store.claim_polls("worker-b", soon, soon + TTL, 10, soon + TTL)
    assert [r.target_id for r in taken] == order[4:]


async def test_a_poll_lease_is_one_statement_on_postgresql(store: SqlJobStore) -> None:
    if not store.db.is_postgres:
        pytest.skip("SQLite: a probe, then the write lock only when something is due")
    order = await _awaiting(store)
    at = T0 + timedelta(seconds=2)
    with executions(store) as sent:
        leased = await store.claim_polls(WORKER, at, at + TTL, 10)
        assert await store.claim_polls(WORKER, at, at + TTL, 10) == []
    assert [r.target_id for r in leased] == order[:4]
    assert len(sent) == 2, sent  # one each, whether or not anything was due


class _Timed(FakeExecutor):
    """Notes the fake clock's time of every poll."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.sent_at: list[tuple[str | None, object]] = []

    async def poll(self, batch: Batch) -> SubJobOutcomes:
        self.sent_at.append((batch.subjobs[0].cloud_job_id, self.clock.now()))
        return await super().poll(batch)


async def test_the_poller_leases_rows_due_within_poll_ahead_and_reads_each_when_due(
    store: SqlJobStore,
) -> None:
    await _awaiting(store)  # job-a due at T0 + 1 s, job-b at 2 s, job-less rows at 3 s
    clock = FakeClock(T0 + timedelta(milliseconds=800))
    executor = _Timed(clock)
    never = EngineConfig(worker="w-0", poll_ahead=0.0)
    assert await Poller(store, executor, clock, never).run_once() == 0  # nothing due at 0.8 s

    poller = Poller(store, executor, clock, EngineConfig(worker=WORKER, poll_ahead=0.3))
    polling = asyncio.create_task(poller.run_once())
    await until_leased(store, 2)  # at 0.8 s: job-a's two rows, due within 0.3 s
    await clock.advance(0.1)
    assert executor.sent_at == []  # not read before it is due
    await clock.advance(0.1)
    assert await polling == 2
    assert executor.sent_at == [("job-a", T0 + timedelta(seconds=1))]


async def until_leased(store: SqlJobStore, count: int) -> None:
    held = sa.select(sa.func.count()).where(SUBJOBS.c.lease_owner == WORKER)
    for _ in range(500):
        async with store.db.read() as conn:
            if (await conn.execute(held)).scalar() == count:
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} rows were not leased")


async def test_a_poll_leased_ahead_takes_no_poll_slot_while_it_waits(store: SqlJobStore) -> None:
    await _accepted(store, [("job-a", 1.0), (None, 0.85)])
    clock = FakeClock(T0 + timedelta(milliseconds=800))
    executor = _Timed(clock)
    one = EngineConfig(worker=WORKER, poll_ahead=0.3, max_polls_in_flight=1)
    tasks: list[asyncio.Task[None]] = []
    poller = Poller(store, executor, clock, one, spawn=lambda c: _spawned(tasks, c))
    assert await poller.run_once() == 1  # job-a, leased ahead: it waits for 1.0 s
    await clock.advance(0.05)  # the job-less row is due at 0.85 s
    assert await poller.run_once() == 1  # the only poll slot is not the waiting poll's
    await asyncio.sleep(0.05)
    assert executor.sent_at == [(None, T0 + timedelta(milliseconds=850))]
    await clock.advance(0.15)
    await asyncio.gather(*tasks)
    assert executor.sent_at[1] == ("job-a", T0 + timedelta(seconds=1))


def _spawned(
    tasks: list[asyncio.Task[None]], coro: Coroutine[None, None, None]
) -> asyncio.Task[None]:
    task = asyncio.create_task(coro)
    tasks.append(task)
    return task


async def test_a_jobs_rows_due_apart_are_read_when_the_first_is_due(store: SqlJobStore) -> None:
    await _accepted(store, [("job-a", 1.0), ("job-a", 1.1)])
    clock = FakeClock(T0 + timedelta(milliseconds=900))
    executor = _Timed(clock)
    poller = Poller(store, executor, clock, EngineConfig(worker=WORKER, poll_ahead=0.3))
    polling = asyncio.create_task(poller.run_once())
    await until_leased(store, 2)
    await clock.advance(0.1)
    assert await polling == 2
    # the row due at 1.0 s is not held for the one due at 1.1 s
    assert executor.sent_at == [("job-a", T0 + timedelta(seconds=1))]
