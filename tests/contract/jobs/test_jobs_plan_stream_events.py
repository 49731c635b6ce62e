"""What an operation dispatched while its listing goes on tells (D101): `operation.planned`
(the webhook's `fleet.operation.started`) when it opens, before any of its rows can fail; the
end of its listing; a listing stopped early as such (not as a spent error budget, whose
`operation.halted` is the webhook's `fleet.operation.budget_exhausted`); a postponed listing."""

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
    paged,
)

from fleet.api.views import operation_out
from jobs.errors import PlanningError
from jobs.outcomes import Failed
from jobs.states import OperationState, State
from jobs.store import SqlJobStore
from jobs.testing import FakeExecutor, items

pytestmark = pytest.mark.contract


async def test_it_is_told_planned_when_it_opens_and_once(store: SqlJobStore) -> None:
    planner, h, op = await paged(store, items(6), 4)
    planning = await first_rows_sent(h, planner)
    assert await history(store, op.id) == ["operation.created", "operation.planned"]
    planner.release.set()
    async with asyncio.timeout(10):
        await planning
    await h.run(op.id)
    assert await history(store, op.id) == [
        "operation.created",
        "operation.planned",
        "operation.listing_ended",
        "operation.finished",
    ]


async def test_its_first_failures_come_after_it_is_told_planned(store: SqlJobStore) -> None:
    planner = PagedPlanner(items(6), 4)
    executor = FakeExecutor(default_profile=PROFILE)
    executor.poll_script["srv-00000"] = [Failed(code="x", reason="boom")]
    h = Harness(store, planner=planner, executor=executor)
    op = await h.create()
    planning = await first_rows_sent(h, planner)
    await h.clock.advance(h.config.poll_interval)
    await h.poller.run_once()
    planner.release.set()
    async with asyncio.timeout(10):
        await planning
    events = await store.list_events(op.id, 0, 1000)
    told = [e.event for e in events if e.event == "operation.planned" or e.to_state == "failed"]
    assert told == ["operation.planned", "fail"]


async def test_a_listing_stopped_after_dispatch_began_is_told_as_such(
    store: SqlJobStore,
) -> None:
    planner, h, op = await paged(store, items(8), 5)  # four shown and sent, the fifth held back
    planning = await first_rows_sent(h, planner)
    await listing_fails(planner, planning, PlanningError("endpoint e: a later page cannot be read"))
    view = await h.run(op.id)
    assert view.counts == {State.SUCCEEDED: 4, State.CANCELLED: 1}
    told = await history(store, op.id)
    assert told == [
        "operation.created",
        "operation.planned",
        "operation.listing_stopped",
        "operation.finished",
    ]
    [stopped] = [e for e in await store.list_events(op.id, 0, 100) if "listing_stopped" in e.event]
    assert "a later page cannot be read" in (stopped.message or "")


async def test_a_postponed_listing_is_told_as_any_postponed_planning(store: SqlJobStore) -> None:
    planner, h, op = await paged(store, items(8), 4)
    planning = await first_rows_sent(h, planner)
    await listing_fails(planner, planning, RuntimeError("page 2 failed"))
    assert (await history(store, op.id))[-1] == "operation.planning_postponed"
    [postponed] = [e for e in await store.list_events(op.id, 0, 100) if "postponed" in e.event]
    assert postponed.message == "RuntimeError: page 2 failed"
    # running (its first rows were sent), and the API says why its listing waits, and until when
    view = await h.ops.get(op.id)
    shown = operation_out(view, h.clock.now(), h.planning.waiting.of(op.id))
    assert shown.state is OperationState.RUNNING
    [note] = shown.waiting
    assert "page 2 failed" in note.reason and note.until is not None
    await h.clock.advance(h.config.plan_retry_delay * 2)
    view = await h.run(op.id)
    assert view.counts == {State.SUCCEEDED: 8}
