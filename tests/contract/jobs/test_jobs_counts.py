"""The per-state counts an operation's view shows are kept through every transition: planning
(and a planning attempt started again, refused or postponed), claims, answers, polls, a lost
lease (reaped or recovered after a crash), the error budget, a cancel and retry-failed (with and
without unknown sub-jobs). After each step the counts equal a GROUP BY over the sub-jobs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from jobs_store_helpers import (
    T0,
    TTL,
    WORKER,
    claim_one,
    claim_request,
    counts_and_truth,
    plan_operation,
)

from jobs.plan import PlanBuilder
from jobs.ports import CallResult
from jobs.records import Batch, Change, NewOperation
from jobs.states import Event, State
from jobs.store import SqlJobStore
from jobs.strategy import Strategy, parse_amount
from jobs.testing import items

pytestmark = pytest.mark.contract


async def shows(store: SqlJobStore, op_id: str, expected: dict[State, int]) -> None:
    """The operation's view counts `expected`, and every kept count is the sub-jobs' own."""
    kept, truth = await counts_and_truth(store)
    assert kept == truth
    view = await store.get_view(op_id)
    assert view is not None
    assert view.counts == expected


async def claim(store: SqlJobStore, op_id: str, cap: int, worker: str = WORKER) -> Batch:
    batch = await claim_one(store, claim_request(op_id, cap=cap, worker=worker), [10])
    assert batch is not None
    return batch


def answer(batch: Batch, *events: Event) -> list[Change]:
    """One change per sub-job of `batch`, from DISPATCHING, with the events given in order
    (each with a code, as the engine's decisions have)."""
    return [
        Change(
            s.id,
            batch.operation_id,
            s.target_id,
            State.DISPATCHING,
            e,
            code="E",
            values=(("error_code", "E"),),
        )
        for s, e in zip(batch.subjobs, events, strict=True)
    ]


async def test_counts_follow_claims_answers_polls_crashes_and_retries(store: SqlJobStore) -> None:
    op = await plan_operation(store, items(10))
    await shows(store, op.id, {State.PENDING: 10})
    a = await claim(store, op.id, 4)
    await shows(store, op.id, {State.PENDING: 6, State.DISPATCHING: 4})
    changes = answer(a, Event.ACCEPT, Event.ACCEPT, Event.FAIL, Event.NO_EVIDENCE)
    await store.apply(changes, WORKER, T0, CallResult(a.call_id or 0, "mixed"))
    expected = {State.PENDING: 6, State.AWAITING: 2, State.FAILED: 1, State.UNKNOWN: 1}
    await shows(store, op.id, expected)
    # the poll of the accepted ones: a lease (no transition), then one completes, one fails
    polled = await store.claim_polls(WORKER, T0 + TTL, T0 + TTL * 2, 10)
    assert len(polled) == 2
    await shows(store, op.id, expected)
    first, second = polled
    done = [
        Change(first.id, op.id, first.target_id, State.AWAITING, Event.COMPLETE),
        Change(
            second.id,
            op.id,
            second.target_id,
            State.AWAITING,
            Event.FAIL,
            code="E",
            values=(("error_code", "E"),),
        ),
    ]
    await store.apply(done, WORKER, T0, None)
    expected = {State.PENDING: 6, State.SUCCEEDED: 1, State.FAILED: 2, State.UNKNOWN: 1}
    await shows(store, op.id, expected)
    # a crash: what this worker and another held goes back to pending (to be verified)
    await claim(store, op.id, 2)
    await claim(store, op.id, 2, worker="worker-b")
    await shows(store, op.id, {**expected, State.PENDING: 2, State.DISPATCHING: 4})
    assert await store.recover(WORKER, T0) == 2
    await shows(store, op.id, {**expected, State.PENDING: 4, State.DISPATCHING: 2})
    assert await store.reap(T0 + TTL + timedelta(seconds=1)) == 2
    await shows(store, op.id, expected)
    # a retry within the recipe (back to pending), then retry-failed, then the unknown one too
    b = await claim(store, op.id, 1)
    await store.apply(answer(b, Event.RETRY), WORKER, T0, CallResult(b.call_id or 0, "throttled"))
    await shows(store, op.id, expected)
    assert await store.retry_failed(op.id, "ops", T0) == 2
    await shows(store, op.id, {State.PENDING: 8, State.SUCCEEDED: 1, State.UNKNOWN: 1})
    assert await store.retry_failed(op.id, "ops", T0, include_unknown=True) == 1
    await shows(store, op.id, {State.PENDING: 9, State.SUCCEEDED: 1})
    # a cancel: every pending one not begun is cancelled, the rest (to be verified) finish
    await store.cancel(op.id, "ops", T0)
    view = await store.get_view(op.id)
    assert view is not None
    assert view.counts[State.SUCCEEDED] == 1
    assert view.counts[State.CANCELLED] >= 1
    assert sum(view.counts.values()) == 10
    await shows(store, op.id, view.counts)


async def test_counts_follow_the_error_budget(store: SqlJobStore) -> None:
    strategy = Strategy(max_errors=parse_amount("1", "max_errors"))
    op = await plan_operation(store, items(6), strategy=strategy)
    a = await claim(store, op.id, 2)
    fails = answer(a, Event.FAIL, Event.FAIL)
    result = await store.apply(fails, WORKER, T0)
    assert result.halted == (op.id,)
    await shows(store, op.id, {State.FAILED: 2, State.CANCELLED: 4})


async def test_counts_follow_planning_started_again_refused_and_postponed(
    store: SqlJobStore,
) -> None:
    new = NewOperation(kind="stop", strategy=Strategy(), created_by="t", reason="t")
    op, _ = await store.create_operation(new, T0)
    builder = PlanBuilder()
    rows = [r for e in items(5) if (r := builder.add(e)) is not None]  # type: ignore[arg-type]
    claimed = await store.claim_planning(WORKER, T0, T0 + TTL)
    assert claimed is not None
    await store.insert_subjobs(claimed, rows, WORKER, T0, T0 + TTL)
    await shows(store, op.id, {State.PENDING: 5})
    # the planner died: the next attempt starts again from nothing
    later = T0 + TTL * 2
    again = await store.claim_planning("worker-b", later, later + TTL)
    assert again is not None
    await shows(store, op.id, {})
    await store.insert_subjobs(again, rows[:3], "worker-b", later, later + TTL)
    await shows(store, op.id, {State.PENDING: 3})
    assert await store.postpone_planning(op.id, "cloud down", later, "worker-b", later)
    await shows(store, op.id, {})
    third = await store.claim_planning(WORKER, later, later + TTL)
    assert third is not None
    await store.insert_subjobs(third, rows, WORKER, later, later + TTL)
    assert await store.refuse_planning(op.id, "too many", None, WORKER, later)
    await shows(store, op.id, {})
