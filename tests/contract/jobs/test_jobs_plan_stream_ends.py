"""How an operation dispatched while its listing goes on ends (D101), on a real store: when its
listing ends with nothing more to list, when it is cancelled while its listing waits to be tried
again, and never `succeeded` when its listing stopped early, not even after a retry."""

from __future__ import annotations

import asyncio

import pytest
from jobs_store_helpers import Harness
from plan_stream_helpers import PROFILE, PagedPlanner, first_rows_sent

from jobs.errors import Conflict, PlanningError
from jobs.outcomes import Failed
from jobs.states import OperationState, State
from jobs.store import SqlJobStore
from jobs.testing import FakeExecutor, items

pytestmark = pytest.mark.contract


async def test_a_retry_after_its_listing_stopped_early_is_refused(store: SqlJobStore) -> None:
    """Four of eight servers were never listed: a retry of the failed one would have it end
    `succeeded`; it is refused, naming why, and the operation stays stopped."""
    planner = PagedPlanner(items(8), 4)
    executor = FakeExecutor(default_profile=PROFILE)
    executor.poll_script["srv-00000"] = [Failed(code="x", reason="boom")]
    h = Harness(store, planner=planner, executor=executor)
    op = await h.create()
    planning = await first_rows_sent(h, planner)
    planner.fail = PlanningError("endpoint e: a later page cannot be read")
    planner.release.set()
    async with asyncio.timeout(10):
        await planning
    view = await h.run(op.id)
    assert view.state is OperationState.STOPPED
    with pytest.raises(Conflict, match="listing stopped before every server was listed") as err:
        await h.ops.retry_failed(op.id, "tester")
    assert "a later page cannot be read" in str(err.value)
    after = await h.ops.get(op.id)
    assert after.state is OperationState.STOPPED
    assert after.counts == {State.SUCCEEDED: 3, State.FAILED: 1}
    assert "a later page cannot be read" in (after.operation.halted_reason or "")
