"""Claims of several groups of one batch key (a campaign's usual case) are read and written in a
few statements, whatever the number of groups, with the same groups, call rows and events as one
group at a time; rows of mixed groups are still claimed group by group. On both databases."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from jobs_store_helpers import T0, TTL, WORKER, claim_request, executions, plan_operation

from jobs.states import Event, State
from jobs.store import SqlJobStore
from jobs.testing import items

pytestmark = pytest.mark.contract


async def test_ten_groups_of_one_batch_key_are_claimed_in_a_few_statements(
    store: SqlJobStore,
) -> None:
    op = await plan_operation(store, items(235, batch_key="b"))
    with executions(store) as sent:
        batches = await store.claim_batches(claim_request(op.id, cap=1000), [24], 10)
    assert [len(b.subjobs) for b in batches] == [24] * 9 + [19]
    assert [b.target_ids[0] for b in batches] == [f"srv-{i * 24:05d}" for i in range(10)]
    # one group at a time took 64 statements here (five or six a group)
    assert len(sent) <= 12, sent
    assert len({b.call_id for b in batches}) == 10
    calls = {c.id: c.servers for c in await store.list_calls(op.id)}
    assert {b.call_id: b.target_ids for b in batches} == calls
    page = await store.list_subjobs(op.id, State.DISPATCHING, None, 1000)
    by_target = {t: b.call_id for b in batches for t in b.target_ids}
    assert {s.target_id: s.call_id for s in page.items} == by_target
    assert {(s.attempt, s.lease_owner) for s in page.items} == {(1, WORKER)}
    claims = [e for e in await store.list_events(op.id, 0, 10_000) if e.event == Event.CLAIM]
    assert sorted(e.call_id for e in claims) == sorted(by_target.values())
    assert (
        await store.claim_batches(claim_request(op.id, cap=1000), [24], 10) == []
    )  # every row claimed once


async def test_a_claim_keeps_to_its_servers_and_groups(store: SqlJobStore) -> None:
    op = await plan_operation(store, items(100, batch_key="b"))
    batches = await store.claim_batches(claim_request(op.id, cap=30), [24], 10)
    assert [len(b.subjobs) for b in batches] == [24, 6]
    batches = await store.claim_batches(claim_request(op.id, cap=1000), [24], 2)
    assert [len(b.subjobs) for b in batches] == [24, 24]


async def test_rows_of_mixed_groups_are_claimed_group_by_group(store: SqlJobStore) -> None:
    entries = items(3, batch_key="x") + items(30, batch_key="y", prefix="other-")
    op = await plan_operation(store, entries)
    batches = await store.claim_batches(claim_request(op.id, cap=1000), [24], 3)
    assert [(b.batch_key, len(b.subjobs)) for b in batches] == [("x", 3), ("y", 24), ("y", 6)]


async def test_a_claim_moves_all_its_rows_with_one_update(
    store: SqlJobStore,
) -> None:
    op = await plan_operation(store, items(235, batch_key="b"))
    with executions(store) as sent:
        batches = await store.claim_batches(claim_request(op.id, cap=1000), [24], 10)
    assert sum(len(b.subjobs) for b in batches) == 235
    # an executemany ran one UPDATE per row: 235 here, 7,580 in an unlimited 10,000-server stop
    assert [n for sql, n in sent if sql.lstrip().startswith("UPDATE subjobs")] == [1]
    # and one INSERT per event row (D107)
    assert [n for sql, n in sent if sql.lstrip().startswith("INSERT INTO events")] == [1]


async def test_a_claim_stamps_the_cloud_floor_on_sends_not_on_verifications(
    store: SqlJobStore,
) -> None:
    op = await plan_operation(store, items(6, batch_key="b"))
    floor = T0 - timedelta(seconds=5)
    first = replace(claim_request(op.id, cap=1000), cloud_floor=floor)
    sent = await store.claim_batches(first, [4], 10)
    assert [len(b.subjobs) for b in sent] == [4, 2]
    rows = (await store.list_subjobs(op.id, State.DISPATCHING, None, 10)).items
    assert {(r.attempt, r.sent_after, r.lease_owner) for r in rows} == {(1, floor, WORKER)}
    assert {r.target_id: r.call_id for r in rows} == {
        t: b.call_id for b in sent for t in b.target_ids
    }
    assert await store.recover(WORKER, T0) == 6  # to be verified before anything is sent
    later = T0 + TTL * 2
    again = replace(claim_request(op.id, cap=1000, now=later), cloud_floor=later)
    verify = await store.claim_batches(again, [4], 10)
    assert [(len(b.subjobs), b.verify) for b in verify] == [(4, True), (2, True)]
    rows = (await store.list_subjobs(op.id, State.DISPATCHING, None, 10)).items
    # a verification is not a send: neither the attempt nor the floor moves
    assert {(r.attempt, r.sent_after) for r in rows} == {(1, floor)}
    assert {r.call_id for r in rows} == {b.call_id for b in verify}


async def test_one_claim_of_verifications_and_sends_moves_each_row_onto_its_own_call(
    store: SqlJobStore,
) -> None:
    op = await plan_operation(store, items(6, batch_key="b"))
    floor = T0 - timedelta(seconds=5)
    first = replace(claim_request(op.id, cap=3), cloud_floor=floor)
    assert [len(b.subjobs) for b in await store.claim_batches(first, [1], 10)] == [1, 1, 1]
    assert await store.recover(WORKER, T0) == 3  # these three are verified before a send
    later = T0 + TTL * 2
    again = replace(claim_request(op.id, cap=1000, now=later), cloud_floor=later)
    with executions(store) as sent:
        batches = await store.claim_batches(again, [1], 10)
    assert sorted(b.verify for b in batches) == [False] * 3 + [True] * 3
    assert len({b.call_id for b in batches}) == 6
    # PostgreSQL: one UPDATE; SQLite: one for the verifications, one for the sends
    updates = [n for sql, n in sent if sql.lstrip().startswith("UPDATE subjobs")]
    assert updates == ([1] if store.db.is_postgres else [1, 1])
    rows = {r.target_id: r for r in (await store.list_subjobs(op.id, None, None, 10)).items}
    for batch in batches:
        (row,) = (rows[t] for t in batch.target_ids)
        assert (row.state, row.call_id, row.lease_owner) == (
            State.DISPATCHING,
            batch.call_id,
            WORKER,
        )
        # a verification neither counts as a send nor moves the floor
        assert (row.attempt, row.sent_after) == ((1, floor) if batch.verify else (1, later))
        assert batch.subjobs[0].attempt == row.attempt
