"""The store's totals for `/metrics`: the same answers on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from jobs_store_helpers import T0, TTL, WORKER, claim_one, plan_operation

from jobs.records import CallTotal, ClaimRequest, NewOperation
from jobs.states import OperationState, State
from jobs.store import SqlJobStore
from jobs.strategy import Strategy
from jobs.testing import items

pytestmark = pytest.mark.contract


async def test_totals_count_operations_subjobs_and_calls(store: SqlJobStore) -> None:
    assert set((await store.operation_state_totals()).values()) == {0}
    assert await store.cloud_call_totals() == []
    op = await plan_operation(store, items(5))
    await plan_operation(store, items(2, prefix="dry-"), dry_run=True)
    await store.create_operation(NewOperation(kind="stop", strategy=Strategy()), T0)
    request = ClaimRequest(op.id, "cloud:action", 100, 10**9, WORKER, T0, T0 + TTL)
    assert await claim_one(store, request, [3]) is not None

    operations = await store.operation_state_totals()
    assert {s: n for s, n in operations.items() if n} == {
        OperationState.RUNNING: 1,
        OperationState.PLANNED: 1,
        OperationState.PLANNING: 1,
    }
    subjobs = await store.subjob_state_totals()
    assert set(subjobs) == set(State)
    assert {s: n for s, n in subjobs.items() if n} == {State.DISPATCHING: 3, State.PENDING: 2}
    assert await store.cloud_call_totals() == [CallTotal("cloud:action", "submit", None, 1)]
