"""The rows a re-plan of an operation open to dispatch goes on from (D101) are read a page at a
time, in their order, skipped ones included: a re-plan of a large operation holds one page."""

from __future__ import annotations

import pytest
from jobs_store_helpers import Harness

from jobs.store import SqlJobStore
from jobs.store.streaming import planned_rows
from jobs.testing import FakePlanner, items

pytestmark = pytest.mark.contract


async def test_kept_rows_are_read_a_page_at_a_time_in_their_order(store: SqlJobStore) -> None:
    h = Harness(store, planner=FakePlanner(items(5, skip={1: "gone", 3: "gone"})))
    op = await h.create()
    await h.planning.run_once()
    pages = [page async for page in planned_rows(store.db, op.id, page=2)]
    assert [len(page) for page in pages] == [2, 2, 1]
    rows = [row for page in pages for row in page]
    assert [row.seq for row in rows] == sorted(row.seq for row in rows)
    assert sorted(row.target_id for row in rows) == [f"srv-{i:05d}" for i in range(5)]
    assert sorted(row.target_id for row in rows if row.skip_reason == "gone") == [
        "srv-00001",
        "srv-00003",
    ]
