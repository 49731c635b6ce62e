"""Planned rows on SQLite: the store's own multi-row insert writes every column exactly as
SQLAlchemy's Core insert of the same values does (PostgreSQL takes them by `COPY`)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from jobs_store_helpers import T0, TTL, WORKER, executions

from jobs.plan import PlanBuilder
from jobs.ports import PlanItem
from jobs.records import NewOperation
from jobs.states import State
from jobs.store import SqlJobStore, counts
from jobs.store.models import SUBJOBS
from jobs.store.planning import planned_values
from jobs.strategy import Strategy
from jobs.testing import items

pytestmark = pytest.mark.contract

COLUMNS = [c.name for c in SUBJOBS.columns if c.name not in ("id", "operation_id")]


async def _raw_rows(store: SqlJobStore, operation_id: str) -> list[tuple[object, ...]]:
    """The stored values as SQLite holds them (text, integers), not as SQLAlchemy reads them."""
    sql = f"SELECT {', '.join(COLUMNS)} FROM subjobs WHERE operation_id = ? ORDER BY seq"  # noqa: S608
    async with store.db.read() as conn:
        return [tuple(r) for r in (await conn.exec_driver_sql(sql, (operation_id,))).all()]


async def test_planned_rows_are_stored_as_a_core_insert_stores_them(store: SqlJobStore) -> None:
    if store.db.is_postgres:
        pytest.skip("PostgreSQL takes planned rows by COPY")
    entries = items(5, skip={3: "already stopped"})
    entries.append(
        PlanItem(
            target_id="srv-ü",
            rate_key="cloud:action",
            batch_key="b",
            payload={"name": 'naïve "quoted" ✓', "flavor": None, "n": [1, 2.5]},
            scope="",
        )
    )
    new = NewOperation(kind="stop", strategy=Strategy(), created_by="t", dry_run=False, reason="t")
    op, _ = await store.create_operation(new, T0)
    other, _ = await store.create_operation(new, T0 + timedelta(seconds=1))
    claimed = await store.claim_planning(WORKER, T0, T0 + TTL)
    assert claimed is not None and claimed.id == op.id
    builder = PlanBuilder()
    rows = [r for e in entries if isinstance(e, PlanItem) and (r := builder.add(e)) is not None]
    now = T0 + timedelta(microseconds=123456)
    with executions(store) as sent:
        assert await store.insert_subjobs(claimed, rows, WORKER, now, now + TTL) == len(rows)
    # one statement for the rows, not one per row (an executemany, D107)
    assert [n for sql, n in sent if sql.startswith("INSERT INTO subjobs")] == [1]

    core = planned_values(other.id, "stop", rows, now)
    async with store.db.write() as conn:
        await conn.execute(sa.insert(SUBJOBS), core)
        await counts.add_inserted(conn, other.id, (str(v["state"]) for v in core))

    mine, theirs = await _raw_rows(store, op.id), await _raw_rows(store, other.id)
    assert len(mine) == len(rows)
    assert mine == theirs
    listed = await store.list_subjobs(op.id, None, None, 100)
    by_target = {s.target_id: s for s in listed.items}
    assert by_target["srv-ü"].payload == {"name": 'naïve "quoted" ✓', "flavor": None, "n": [1, 2.5]}
    assert by_target["srv-00003"].state is State.SKIPPED
    assert by_target["srv-00000"].not_before == now
