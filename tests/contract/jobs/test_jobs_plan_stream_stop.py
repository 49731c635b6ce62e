"""The rows of an operation dispatched while listed (D101) that its listing wrote but never
showed to dispatch, when the listing stops early: they are cancelled saying why, and the
operation's targets count them, as its counts do."""

from __future__ import annotations

import asyncio

import pytest
from jobs_store_helpers import Harness
from plan_stream_helpers import (
    PROFILE,
    PagedPlanner,
    dispatch_all,
    first_rows_sent,
    listing_fails,
    paged,
)

from jobs.errors import PlanningError
from jobs.states import OperationState, State
from jobs.store import SqlJobStore
from jobs.testing import FakeExecutor, items

pytestmark = pytest.mark.contract


async def test_rows_never_shown_are_cancelled_for_the_listing_and_counted(
    store: SqlJobStore,
) -> None:
    # pages of 4 and 2 rows against calls of 3: the second page's rows are written, not shown
    planner, h, op = await paged(store, items(10), 4, 6)
    planning = asyncio.create_task(h.planning.run_once())
    async with asyncio.timeout(10):
        await planner.at[0].wait()
    await dispatch_all(h)
    planner.go[0].set()
    async with asyncio.timeout(10):
        await planner.at[1].wait()
    await listing_fails(
        planner, planning, PlanningError("endpoint e: a later page cannot be read"), cut=1
    )
    view = await h.run(op.id)
    assert view.state is OperationState.STOPPED
    assert view.operation.targets == sum(view.counts.values()) == 6
    cancelled = [
        s
        for s in (await store.list_subjobs(op.id, None, None, 100)).items
        if s.state is State.CANCELLED
    ]
    assert cancelled
    assert {s.reason for s in cancelled} == {
        "stopped: the listing stopped early: planning refused: endpoint e: a later page cannot be read"
    }


async def test_a_cancel_while_it_lists_then_a_postponed_listing_ends_it_summed(
    store: SqlJobStore,
) -> None:
    """Cancelled while it lists, its listing then fails and is postponed with calls in flight:
    the listing ends there, so when the calls are answered it finishes with its summary and
    with targets that count every row written, as its counts do."""
    planner = PagedPlanner(items(8), 5)  # four shown and sent, the fifth held back
    executor = FakeExecutor(default_profile=PROFILE, polls_to_complete=2)
    h = Harness(store, planner=planner, executor=executor)
    op = await h.create()
    planning = await first_rows_sent(h, planner)
    await h.ops.cancel(op.id, "tester")
    await listing_fails(planner, planning, RuntimeError("page 2 failed"))
    for _ in range(2):  # its calls are answered before any planning round
        await h.clock.advance(h.config.poll_interval)
        await h.poller.run_once()
    view = await h.ops.get(op.id)
    assert view.operation.finished_at is not None
    assert view.state is OperationState.CANCELLED
    assert view.operation.summary is not None
    assert view.operation.targets == sum(view.counts.values()) == 5
    assert view.counts == {State.SUCCEEDED: 4, State.CANCELLED: 1}
