"""Poll leases: the due AWAITING rows are leased once each, in the order they fall due (a cloud
job's rows together, job-less rows last), at most the limit, and a lease that ran out is taken
again. On PostgreSQL the rows are picked, leased and read back by one statement (its own
transaction); it was a probe, a locking SELECT and an UPDATE. On both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from jobs_store_helpers import T0, TTL, WORKER, claim_one, claim_request, executions, plan_operation

from jobs.records import Change
from jobs.states import Event, State
from jobs.store import SqlJobStore
from jobs.testing import items

pytestmark = pytest.mark.contract


async def _awaiting(store: SqlJobStore) -> list[str]:
    """Six rows awaiting their polls: a cloud job's due at T0 + 1 s, another's at 2 s, and
    job-less rows at 3 s; returns the targets in the order they fall due."""
    op = await plan_operation(store, items(6))
    batch = await claim_one(store, claim_request(op.id, cap=6), [10])
    assert batch is not None
    due = {0: (None, 3), 1: ("job-b", 2), 2: ("job-a", 1), 3: (None, 3), 4: ("job-a", 1)}
    due[5] = ("job-b", 2)
    changes = []
    for i, sub in enumerate(batch.subjobs):
        job, seconds = due[i]
        values = (("cloud_job_id", job), ("not_before", T0 + timedelta(seconds=seconds)))
        changes.append(
            Change(sub.id, op.id, sub.target_id, State.DISPATCHING, Event.ACCEPT, values=values)
        )
    assert (await store.apply(changes, WORKER, T0)).applied == 6
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
