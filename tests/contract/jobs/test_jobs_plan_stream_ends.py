"""How an operation dispatched while its listing goes on ends (D101), on a real store: when its
listing ends with nothing more to list, when it is cancelled while its listing waits to be tried
again, and never `succeeded` when its listing stopped early, not even after a retry."""

from __future__ import annotations

import asyncio

import pytest
from jobs_store_helpers import Harness
from plan_stream_helpers import (
    PROFILE,
    PagedPlanner,
    first_rows_sent,
    history,
    listing_fails,
    nothing_sent_while_listing,
    paged,
)

from jobs.errors import Conflict, PlanningError
from jobs.outcomes import Failed
from jobs.states import OperationState, State
from jobs.store import SqlJobStore
from jobs.testing import FakeExecutor, items

pytestmark = pytest.mark.contract


async def test_a_retry_after_its_listing_stopped_early_is_refused(store: SqlJobStore) -> None:
    """Three of eight servers were never listed (and a fifth was listed but never shown): a
    retry of the failed one would have it end `succeeded`; it is refused, naming why, and the
    operation stays stopped."""
    planner = PagedPlanner(items(8), 5)
    executor = FakeExecutor(default_profile=PROFILE)
    executor.poll_script["srv-00000"] = [Failed(code="x", reason="boom")]
    h = Harness(store, planner=planner, executor=executor)
    op = await h.create()
    planning = await first_rows_sent(h, planner)
    await listing_fails(planner, planning, PlanningError("endpoint e: a later page cannot be read"))
    view = await h.run(op.id)
    assert view.state is OperationState.STOPPED
    with pytest.raises(Conflict, match="listing stopped before every server was listed") as err:
        await h.ops.retry_failed(op.id, "tester")
    assert "a later page cannot be read" in str(err.value)
    after = await h.ops.get(op.id)
    assert after.state is OperationState.STOPPED
    assert after.counts == {State.SUCCEEDED: 3, State.FAILED: 1, State.CANCELLED: 1}
    assert "a later page cannot be read" in (after.operation.halted_reason or "")


async def test_it_finishes_when_its_listing_ends_with_nothing_more(store: SqlJobStore) -> None:
    """Every row shown is done while the listing waits; the listing then ends with no more
    rows: the last one written, held back until then, is shown by the end of the listing
    (nothing left to write), sent, and the operation finishes once, `succeeded`."""
    planner, h, op = await paged(store, items(4), 4)
    planning = await first_rows_sent(h, planner)
    await h.clock.advance(h.config.poll_interval)
    await h.poller.run_once()
    view = await h.ops.get(op.id)
    assert view.counts == {State.SUCCEEDED: 3, State.PENDING: 1}
    assert view.operation.targets == 3
    assert view.state is OperationState.RUNNING
    planner.release.set()
    async with asyncio.timeout(10):
        await planning
    view = await h.ops.get(op.id)
    assert view.operation.targets == 4
    assert view.operation.finished_at is None  # its last row is to be sent
    view = await h.run(op.id)
    assert view.operation.finished_at is not None
    assert view.state is OperationState.SUCCEEDED
    assert view.counts == {State.SUCCEEDED: 4}
    assert [len(t) for _, _, t in h.executor.calls] == [3, 1]
    assert (await history(store, op.id)).count("operation.finished") == 1


async def test_one_calls_worth_is_planned_whole(store: SqlJobStore) -> None:
    """Exactly one call's worth listed before the end: with the last row held back it does not
    open; the listing ends, and one call carries all three."""
    planner, h, op = await paged(store, items(3), 3)
    await nothing_sent_while_listing(h, planner, op.id)
    view = await h.run(op.id)
    assert view.state is OperationState.SUCCEEDED
    assert [len(t) for _, _, t in h.executor.calls] == [3]


async def _postponed(h: Harness, planner: PagedPlanner) -> None:
    """Its first rows sent, its listing fails and waits to be tried again."""
    planning = await first_rows_sent(h, planner)
    await listing_fails(planner, planning, RuntimeError("page 2 failed"))


async def test_a_cancel_while_its_listing_is_postponed_finishes_it(store: SqlJobStore) -> None:
    planner, h, op = await paged(store, items(8), 5)  # four shown and sent, the fifth held back
    await _postponed(h, planner)
    await h.clock.advance(h.config.poll_interval)
    await h.poller.run_once()
    await h.ops.cancel(op.id, "tester")
    view = await h.ops.get(op.id)
    assert view.operation.finished_at is not None
    assert view.state is OperationState.CANCELLED
    assert view.counts == {State.SUCCEEDED: 4, State.CANCELLED: 1}
    assert len(planner.plans) == 1  # not listed again


@pytest.mark.parametrize("when", ["postponed", "listing"])
async def test_a_cancelled_one_with_calls_in_flight_is_left_alone_by_planning(
    store: SqlJobStore, when: str
) -> None:
    """Cancelled while its listing waits to be tried again (or while it lists, which then
    fails): planning has nothing more to do with it, and does not rewrite it at every tick
    while its calls in flight finish."""
    planner = PagedPlanner(items(8), 5)
    executor = FakeExecutor(default_profile=PROFILE, polls_to_complete=2)
    h = Harness(store, planner=planner, executor=executor)
    op = await h.create()
    if when == "postponed":
        await _postponed(h, planner)
        await h.ops.cancel(op.id, "tester")
    else:
        planning = await first_rows_sent(h, planner)
        await h.ops.cancel(op.id, "tester")
        await listing_fails(planner, planning, RuntimeError("page 2 failed"))
    await h.clock.advance(1)
    assert await h.planning.run_once() == 0
    settled = await store.get_operation(op.id)
    assert settled is not None and settled.finished_at is None  # its calls are in flight
    for _ in range(3):
        await h.clock.advance(h.config.plan_retry_delay * 3)
        assert await h.planning.run_once() == 0
        assert await store.get_operation(op.id) == settled
    assert len(planner.plans) == 1
    assert (await h.ops.get(op.id)).state is OperationState.CANCELLING
    view = await h.run(op.id)  # its calls are answered: it ends
    assert view.state is OperationState.CANCELLED
    assert view.counts == {State.SUCCEEDED: 4, State.CANCELLED: 1}
