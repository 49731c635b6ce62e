"""Claims of several groups of one batch key (a campaign's usual case) are read and written in a
few statements, whatever the number of groups, with the same groups, call rows and events as one
group at a time; rows of mixed groups are still claimed group by group. On both databases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from jobs_store_helpers import WORKER, claim_request, plan_operation
from sqlalchemy import event

from jobs.states import Event, State
from jobs.store import SqlJobStore
from jobs.testing import items

pytestmark = pytest.mark.contract


@contextmanager
def _statements(store: SqlJobStore) -> Iterator[list[str]]:
    """The SQL statements the store sends while the block runs."""
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    engine = store.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)


async def test_ten_groups_of_one_batch_key_are_claimed_in_a_few_statements(
    store: SqlJobStore,
) -> None:
    op = await plan_operation(store, items(235, batch_key="b"))
    with _statements(store) as sent:
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
