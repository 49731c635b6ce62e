"""Approvals in the engine (SQLite and PostgreSQL): an operation a rule holds for is planned,
then waits with nothing sent until another caller approves it; a rejection or an expiry ends it
with every sub-job cancelled."""

from __future__ import annotations

from datetime import timedelta

import pytest
from jobs_store_helpers import Harness

from jobs.approval import ApprovalRule, ApprovalRules, Decision
from jobs.errors import Conflict, NotAllowed
from jobs.loops.reaping import Reaper
from jobs.ports import FleetSize
from jobs.states import OperationState, State
from jobs.store import SqlJobStore
from jobs.strategy import BlastRadius
from jobs.testing import FakePlanner, items

pytestmark = pytest.mark.contract

MORE_THAN_5 = ApprovalRules(
    (ApprovalRule("more than 5 servers need approval", BlastRadius(max_servers=5)),),
    window_seconds=3600,
)


async def _pending(h: Harness, rules: ApprovalRules = MORE_THAN_5) -> str:
    op = await h.create(approval=rules)
    for _ in range(3):
        await h.round()
    view = await h.ops.get(op.id)
    assert view.state is OperationState.PENDING_APPROVAL
    assert h.executor.calls == []  # planned, never sent
    return op.id


async def test_a_plan_beyond_a_rule_waits_until_another_caller_approves(
    store: SqlJobStore,
) -> None:
    h = Harness(store, planner=FakePlanner(items(8)))
    op_id = await _pending(h)
    view = await h.ops.get(op_id)
    approval = view.operation.approval
    assert approval is not None
    assert approval.reason == "more than 5 servers need approval"
    assert approval.decision is None
    assert approval.expires_at == view.operation.planned_at + timedelta(hours=1)
    assert view.counts == {State.PENDING: 8}
    assert (await store.operation_state_totals())[OperationState.PENDING_APPROVAL] == 1
    approved = await h.ops.approve(op_id, "bob", "looks right")
    assert approved.operation.approval is not None
    assert approved.operation.approval.decision is Decision.APPROVED
    assert approved.operation.approval.decided_by == "bob"
    assert approved.operation.approval.decided_at == h.clock.now()
    assert approved.operation.approval.note == "looks right"
    done = await h.run(op_id)
    assert done.state is OperationState.SUCCEEDED
    assert done.counts == {State.SUCCEEDED: 8}
    names = [e.event for e in await h.ops.events(op_id) if e.subjob_id is None]
    assert names[:4] == [
        "operation.created",
        "operation.planned",
        "operation.approval_requested",
        "operation.approved",
    ]


async def test_a_plan_within_the_rules_runs_without_approval(store: SqlJobStore) -> None:
    h = Harness(store, planner=FakePlanner(items(5)))
    op = await h.create(approval=MORE_THAN_5)
    view = await h.run(op.id)
    assert view.state is OperationState.SUCCEEDED
    assert view.operation.approval is None


async def test_the_creator_cannot_approve_or_reject_its_own_operation(
    store: SqlJobStore,
) -> None:
    h = Harness(store, planner=FakePlanner(items(8)))
    op_id = await _pending(h)
    with pytest.raises(NotAllowed, match="'tester' created this operation"):
        await h.ops.approve(op_id, "tester")
    with pytest.raises(NotAllowed, match="cancel it"):
        await h.ops.reject(op_id, "tester")
    await h.round()
    view = await h.ops.get(op_id)
    assert view.state is OperationState.PENDING_APPROVAL
    assert h.executor.calls == []


async def test_a_rejection_cancels_everything_and_nothing_is_sent(store: SqlJobStore) -> None:
    h = Harness(store, planner=FakePlanner(items(8)))
    op_id = await _pending(h)
    view = await h.ops.reject(op_id, "carol", "not tonight")
    assert view.state is OperationState.REJECTED
    assert view.counts == {State.CANCELLED: 8}
    assert view.operation.finished_at == h.clock.now()
    approval = view.operation.approval
    assert approval is not None
    assert (approval.decision, approval.decided_by, approval.note) == (
        Decision.REJECTED,
        "carol",
        "not tonight",
    )
    subs = (await h.ops.subjobs(op_id)).items
    assert {s.reason for s in subs} == {"approval rejected by carol"}
    with pytest.raises(Conflict, match="already rejected by carol"):
        await h.ops.approve(op_id, "bob")
    for _ in range(3):
        await h.round()
    assert h.executor.calls == []
    assert (await store.operation_state_totals())[OperationState.REJECTED] == 1


async def test_no_decision_within_the_window_expires_it(store: SqlJobStore) -> None:
    h = Harness(store, planner=FakePlanner(items(8)))
    op_id = await _pending(h)
    reaper = Reaper(store, h.clock, h.config)
    assert await reaper.run_once() == 0  # not yet
    await h.clock.advance(3600)
    assert await reaper.run_once() == 1
    view = await h.ops.get(op_id)
    assert view.state is OperationState.EXPIRED
    assert view.counts == {State.CANCELLED: 8}
    approval = view.operation.approval
    assert approval is not None
    assert approval.decision is Decision.EXPIRED
    assert approval.decided_by is None
    with pytest.raises(Conflict, match="already expired"):
        await h.ops.approve(op_id, "bob")
    names = [e.event for e in await h.ops.events(op_id) if e.subjob_id is None]
    assert names[-2:] == ["operation.approval_expired", "operation.finished"]
    assert h.executor.calls == []


async def test_an_approval_after_the_window_expires_it_instead(store: SqlJobStore) -> None:
    h = Harness(store, planner=FakePlanner(items(8)))
    op_id = await _pending(h)
    await h.clock.advance(3601)
    with pytest.raises(Conflict, match="approval window ended"):
        await h.ops.approve(op_id, "bob")
    view = await h.ops.get(op_id)
    assert view.state is OperationState.EXPIRED
    for _ in range(3):
        await h.round()
    assert h.executor.calls == []


async def test_a_scoped_rule_counts_only_its_scopes(store: SqlJobStore) -> None:
    rules = ApprovalRules(
        (ApprovalRule("endpoint prod requires approval", scopes=("prod",)),), window_seconds=60
    )
    h = Harness(store, planner=FakePlanner([*items(3, scope="dev"), FleetSize("dev", 3)]))
    op = await h.create(approval=rules)
    assert (await h.run(op.id)).state is OperationState.SUCCEEDED
    entries = [*items(3, scope="dev"), *items(1, scope="prod", prefix="p-")]
    h2 = Harness(store, planner=FakePlanner(entries))
    op_id = await _pending(h2, rules)
    view = await h2.ops.get(op_id)
    assert view.operation.approval is not None
    assert view.operation.approval.reason == "endpoint prod requires approval"


async def test_a_cancel_while_pending_ends_it_cancelled(store: SqlJobStore) -> None:
    h = Harness(store, planner=FakePlanner(items(8)))
    op_id = await _pending(h)
    view = await h.ops.cancel(op_id, "tester")
    assert view.state is OperationState.CANCELLED
    with pytest.raises(Conflict, match="cancelled"):
        await h.ops.approve(op_id, "bob")
    assert await Reaper(store, h.clock, h.config).run_once() == 0
    assert h.executor.calls == []


async def test_a_dry_run_never_waits(store: SqlJobStore) -> None:
    h = Harness(store, planner=FakePlanner(items(8)))
    op = await h.create(approval=MORE_THAN_5, dry_run=True)
    view = await h.run(op.id)
    assert view.state is OperationState.PLANNED
    assert view.operation.approval is None


def test_rules_round_trip_through_json() -> None:
    rules = ApprovalRules(
        (
            ApprovalRule("a", BlastRadius(max_servers=3)),
            ApprovalRule("b", scopes=("x", "y")),
        ),
        window_seconds=90.0,
    )
    assert ApprovalRules.from_json(rules.to_json()) == rules
