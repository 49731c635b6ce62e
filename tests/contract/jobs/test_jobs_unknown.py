"""Sub-jobs that end `unknown` (the call may have acted; the cloud keeps no record), on SQLite and
PostgreSQL: counted apart, an operation with one ends `completed_with_failures`, they count
against the error budget, and retry-failed takes them only when asked, reading the cloud first."""

from __future__ import annotations

import pytest
from jobs_store_helpers import WORKER, Harness, claim_one, plan_operation

from jobs.decide import NO_EVIDENCE, Context, Phase, decide_batch
from jobs.errors import Conflict
from jobs.outcomes import Failed, Outcome, Unknown
from jobs.ports import ActionProfile, StepProfile
from jobs.records import ClaimRequest
from jobs.retry import RetryPolicy
from jobs.states import Event, OperationState, State
from jobs.store import SqlJobStore
from jobs.strategy import Strategy
from jobs.testing import FakeExecutor, FakePlanner, items

pytestmark = pytest.mark.contract

REASON = "the call may have acted; the cloud keeps no record"


def executor(script: dict[str, list[Outcome]]) -> FakeExecutor:
    profile = ActionProfile((StepProfile(10),), poll_batch=50)
    return FakeExecutor(default_profile=profile, script=script)


async def _finished(store: SqlJobStore, script: dict[str, list[Outcome]]) -> tuple[Harness, str]:
    """A reboot of 4 targets run to its end with `script`: the harness and the operation's id."""
    h = Harness(store, planner=FakePlanner(items(4)), executor=executor(script))
    op = await h.create(kind="reboot")
    await h.run(op.id)
    return h, op.id


def unknown_two() -> dict[str, list[Outcome]]:
    """Two targets whose call ends with no evidence (a fresh script: the executor pops it)."""
    return {"srv-00000": [Unknown()], "srv-00002": [Unknown()]}


async def test_unknown_sub_jobs_are_counted_apart_with_the_reason(store: SqlJobStore) -> None:
    h, op_id = await _finished(
        store, {**unknown_two(), "srv-00001": [Failed("Ecs.0001", "refused")]}
    )
    view = await h.ops.get(op_id)
    assert view.counts == {State.UNKNOWN: 2, State.FAILED: 1, State.SUCCEEDED: 1}
    assert view.state is OperationState.COMPLETED_WITH_FAILURES
    assert view.done == 4
    rows = (await store.list_subjobs(view.operation.id, State.UNKNOWN, None, 10)).items
    assert [(r.target_id, r.error_code, r.error_message, r.reason) for r in rows] == [
        ("srv-00000", NO_EVIDENCE, REASON, REASON),
        ("srv-00002", NO_EVIDENCE, REASON, REASON),
    ]
    events = [e for e in await store.list_events(view.operation.id, 0, 500) if e.subjob_id]
    ends = [(e.target_id, e.from_state, e.to_state, e.code, e.message) for e in events]
    assert ("srv-00000", State.DISPATCHING, State.UNKNOWN, NO_EVIDENCE, REASON) in ends
    assert [e.event for e in events if e.to_state is State.UNKNOWN] == [Event.NO_EVIDENCE] * 2
    assert h.executor.sent_twice() == []
    subjobs = await store.subjob_state_totals()
    assert subjobs[State.UNKNOWN] == 2
    operations = await store.operation_state_totals()
    assert operations[OperationState.COMPLETED_WITH_FAILURES] == 1


async def test_only_unknown_sub_jobs_still_make_completed_with_failures(store: SqlJobStore) -> None:
    h, op_id = await _finished(store, {"srv-00003": [Unknown()]})
    view = await h.ops.get(op_id)
    assert view.counts == {State.UNKNOWN: 1, State.SUCCEEDED: 3}
    assert view.state is OperationState.COMPLETED_WITH_FAILURES
    totals = await store.operation_state_totals()
    assert totals[OperationState.COMPLETED_WITH_FAILURES] == 1


async def test_retry_failed_leaves_unknown_ones_unless_asked(store: SqlJobStore) -> None:
    h, op_id = await _finished(
        store, {**unknown_two(), "srv-00001": [Failed("Ecs.0001", "refused")]}
    )
    assert await h.ops.retry_failed(op_id, "ops") == 1
    view = await h.run(op_id)
    assert view.counts == {State.UNKNOWN: 2, State.SUCCEEDED: 2}
    assert view.state is OperationState.COMPLETED_WITH_FAILURES
    assert h.executor.verifies == []  # the failed one was refused: simply sent again

    assert await h.ops.retry_failed(op_id, "ops", include_unknown=True) == 2
    requeues = [
        e
        for e in await store.list_events(op_id, 0, 500)
        if e.event == Event.REQUEUE.value and e.from_state is State.UNKNOWN
    ]
    assert sorted(e.target_id or "" for e in requeues) == ["srv-00000", "srv-00002"]
    note = [e.message for e in await store.list_events(op_id, 0, 500) if e.subjob_id is None]
    assert "0 failed and 2 unknown sub-jobs requeued" in note
    view = await h.run(op_id)
    assert view.state is OperationState.SUCCEEDED
    # sent again as asked: the cloud keeps no record that a read could find
    assert h.executor.verifies == []


async def test_a_requeued_unknown_sub_job_is_claimed_to_be_sent_again(store: SqlJobStore) -> None:
    op = await plan_operation(store, items(1))
    request = ClaimRequest(op.id, "cloud:action", 100, 10**9, WORKER, op.created_at, op.created_at)
    batch = await claim_one(store, request, [10])
    assert batch is not None
    ctx = Context(op.created_at, Phase.SUBMIT, RetryPolicy(), 5.0, 600.0, lambda: 0.0)
    changes = decide_batch(batch, {batch.subjobs[0].id: Unknown()}, ctx)
    await store.apply(changes, WORKER, op.created_at)
    assert (await store.counts([op.id]))[op.id] == {State.UNKNOWN: 1}
    assert await store.retry_failed(op.id, "ops", op.created_at) == 0
    assert (await store.counts([op.id]))[op.id] == {State.UNKNOWN: 1}
    assert await store.retry_failed(op.id, "ops", op.created_at, include_unknown=True) == 1
    again = await claim_one(store, request, [10])
    assert again is not None
    assert again.verify is False
    [row] = again.subjobs
    assert (row.error_code, row.error_message) == (None, None)


async def test_unknown_sub_jobs_count_against_the_error_budget(store: SqlJobStore) -> None:
    script: dict[str, list[Outcome]] = {f"srv-{i:05d}": [Unknown()] for i in range(2)}
    h = Harness(store, planner=FakePlanner(items(6)), executor=executor(script))
    strategy = Strategy(max_in_flight=2, max_errors=1)
    op = await h.create(kind="reboot", strategy=strategy)
    view = await h.run(op.id)
    assert view.state is OperationState.STOPPED
    assert view.operation.halted_reason == (
        "max_errors 1 exceeded: 2 failures (2 unknown), 1 allowed of 6 targets"
    )
    assert view.counts == {State.UNKNOWN: 2, State.CANCELLED: 4}
    # the unknown ones alone would stop it again at once: a retry must take them
    with pytest.raises(Conflict, match="include_unknown"):
        await h.ops.retry_failed(op.id, "ops")
    assert await h.ops.retry_failed(op.id, "ops", include_unknown=True) == 2
    view = await h.run(op.id)
    assert view.counts == {State.SUCCEEDED: 2, State.CANCELLED: 4}
