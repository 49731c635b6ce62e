"""An operation nothing can refuse or hold is dispatched while its listing goes on (D101), on a
real store (SQLite and PostgreSQL) with a fake cloud: its first rows are sent before the
planner has ended, a planning that fails or dies after that goes on from the rows it kept, and
no server is sent twice or left out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from fractions import Fraction

import pytest
from jobs_store_helpers import WORKER, Harness
from plan_stream_helpers import (
    PROFILE,
    PagedPlanner,
    dispatch_all,
    first_rows_sent,
    listing_fails,
    nothing_sent_while_listing,
    paged,
)

from jobs.approval import ApprovalRule, ApprovalRules
from jobs.errors import PlanningError
from jobs.outcomes import Advance
from jobs.ports import ActionProfile, PlanEntry, StepProfile
from jobs.records import OperationRecord
from jobs.states import OperationState, State
from jobs.store import SqlJobStore
from jobs.strategy import BlastRadius, Strategy, parse_amount
from jobs.testing import FakeExecutor, FakePlanner, items

pytestmark = pytest.mark.contract


async def test_the_first_rows_are_sent_while_the_listing_goes_on(store: SqlJobStore) -> None:
    """Four rows listed, calls of three: the first three are sent, the fourth (the last
    written) stays unshown while the listing goes on."""
    planner, h, op = await paged(store, items(5), 4)
    planning = await first_rows_sent(h, planner)
    assert [t for _, _, t in h.executor.calls] == [("srv-00000", "srv-00001", "srv-00002")]
    await h.clock.advance(h.config.poll_interval)
    await h.poller.run_once()  # the three are done; the operation is not, its listing goes on
    view = await h.ops.get(op.id)
    assert view.counts == {State.SUCCEEDED: 3, State.PENDING: 1}
    assert view.operation.targets == 3
    assert view.operation.finished_at is None
    assert view.state is OperationState.RUNNING
    planner.release.set()
    async with asyncio.timeout(10):
        await planning
    view = await h.run(op.id)
    assert view.state is OperationState.SUCCEEDED
    assert view.counts == {State.SUCCEEDED: 5}
    assert view.operation.targets == 5
    assert view.operation.summary is not None and view.operation.summary.targets == 5
    assert h.executor.sent_twice() == []


async def test_rows_are_shown_to_dispatch_a_full_call_at_a_time(store: SqlJobStore) -> None:
    """Three rows listed, calls of ten: nothing is sent until the listing ends (a call of three
    would take its share of every later window), then one call carries the five."""
    ten = FakeExecutor(default_profile=ActionProfile((StepProfile(max_batch=10),), poll_batch=10))
    planner, h, op = await paged(store, items(5), 3, executor=ten)
    await nothing_sent_while_listing(h, planner, op.id)
    view = await h.run(op.id)
    assert view.counts == {State.SUCCEEDED: 5}
    assert [len(t) for _, _, t in h.executor.calls] == [5]


@pytest.mark.parametrize(
    "hold",
    [
        {"guard": BlastRadius(max_servers=100)},
        {"guard": BlastRadius(max_percent=Fraction(1, 2))},
        {"approval": ApprovalRules((ApprovalRule("a human looks first"),), 600.0)},
        {"dry_run": True},
        {"strategy": Strategy(waves=(2,))},
        {"strategy": Strategy(max_errors=parse_amount("10%", "max_errors"))},
    ],
    ids=["max_servers", "max_percent", "approval", "dry_run", "waves", "max_errors_percent"],
)
async def test_nothing_is_sent_before_a_plan_that_may_be_refused_or_held_is_whole(
    store: SqlJobStore, hold: dict[str, object]
) -> None:
    planner, h, op = await paged(
        store, items(5), 4, **hold
    )  # enough to open one that nothing refuses or holds
    await nothing_sent_while_listing(h, planner, op.id)
    assert h.executor.calls == []


async def test_a_restart_mid_listing_neither_repeats_nor_loses_a_server(
    store: SqlJobStore,
) -> None:
    """The planning process dies after its first rows were sent: the restarted worker goes on
    from the rows kept (a listing that now shows the targets in another order, one twice)."""
    planner, h, op = await paged(store, items(25), 13)  # twelve shown, the last written held back
    planning = await first_rows_sent(h, planner)
    sent = sorted(t for _, _, call in h.executor.calls for t in call)
    assert len(sent) == 12
    planning.cancel()  # kill -9: the lease stays with the dead process, its rows in the store
    await asyncio.gather(planning, return_exceptions=True)
    relisted = items(25)
    again = Harness(
        store,
        planner=FakePlanner([*relisted[20:], *relisted[:20], relisted[3]]),
        executor=h.executor,
        clock=h.clock,
    )
    await store.recover(WORKER, h.clock.now())  # the restarted worker's start
    view = await again.run(op.id)
    assert view.state is OperationState.SUCCEEDED
    assert view.counts == {State.SUCCEEDED: 25}
    assert h.executor.sent_twice() == []
    done = sorted(t for _, _, call in h.executor.calls for t in call)
    assert done == [f"srv-{i:05d}" for i in range(25)]
    seqs = [s.seq for s in (await store.list_subjobs(op.id, None, None, 100)).items]
    assert sorted(seqs) == list(range(25))


async def test_a_listing_that_fails_after_rows_were_sent_is_planned_again_from_them(
    store: SqlJobStore,
) -> None:
    planner, h, op = await paged(store, items(8), 4)
    planning = await first_rows_sent(h, planner)
    await listing_fails(planner, planning, RuntimeError("page 2 failed"))
    view = await h.ops.get(op.id)
    assert view.operation.finished_at is None
    assert view.operation.refused_reason is None
    assert sum(view.counts.values()) == 4  # the rows sent are kept
    await h.clock.advance(h.config.plan_retry_delay * 2)
    view = await h.run(op.id)
    assert view.state is OperationState.SUCCEEDED
    assert view.counts == {State.SUCCEEDED: 8}
    assert h.executor.sent_twice() == []
    assert len(planner.plans) == 2


async def test_a_refusal_after_rows_were_sent_stops_the_operation_and_keeps_them(
    store: SqlJobStore,
) -> None:
    planner, h, op = await paged(store, items(8), 5)  # four shown and sent, the fifth held back
    planning = await first_rows_sent(h, planner)
    await listing_fails(planner, planning, PlanningError("endpoint e: a later page cannot be read"))
    view = await h.run(op.id)
    assert view.operation.refused_reason is None
    assert "a later page cannot be read" in (view.operation.halted_reason or "")
    # the begun ones finished; the one listed but never shown is cancelled; nothing else planned
    assert view.counts == {State.SUCCEEDED: 4, State.CANCELLED: 1}
    assert h.executor.sent_twice() == []


async def test_a_cancel_while_the_listing_goes_on_ends_once_the_listing_has(
    store: SqlJobStore,
) -> None:
    planner, h, op = await paged(store, items(8), 5)  # four shown and sent, the fifth held back
    planning = await first_rows_sent(h, planner)
    await h.clock.advance(h.config.poll_interval)
    await h.poller.run_once()
    await h.ops.cancel(op.id, "tester")
    assert (await h.ops.get(op.id)).operation.finished_at is None  # its listing goes on
    planner.release.set()
    async with asyncio.timeout(10):
        await planning
    view = await h.ops.get(op.id)
    assert view.state is OperationState.CANCELLED
    assert view.counts == {State.SUCCEEDED: 4, State.CANCELLED: 4}
    assert sum(len(t) for _, _, t in h.executor.calls) == 4  # those listed before the cancel


async def test_a_lease_lost_mid_listing_is_taken_up_by_another_worker(
    store: SqlJobStore,
) -> None:
    planner, h, op = await paged(store, items(6), 4)
    planning = await first_rows_sent(h, planner)
    assert sum(len(t) for _, _, t in h.executor.calls) == 3
    planning.cancel()
    await asyncio.gather(planning, return_exceptions=True)
    await h.clock.advance(h.config.lease_ttl + 1)
    other = Harness(
        store,
        planner=FakePlanner(items(6)),
        executor=h.executor,
        clock=h.clock,
        config=replace(h.config, worker="worker-b"),
    )
    view = await other.run(op.id)
    assert view.state is OperationState.SUCCEEDED
    assert view.counts == {State.SUCCEEDED: 6}
    assert h.executor.sent_twice() == []


def _resize_like(first: int) -> FakeExecutor:
    """A two-step action whose second step is on another rate key (an ECS resize: its action
    call, then the resize API): the first `first` servers move on to it at their first poll."""
    executor = FakeExecutor(default_profile=PROFILE, steps=2)
    for i in range(first):
        executor.poll_script[f"srv-{i:05d}"] = [Advance(next_step=1, rate_key="cloud:resize")]
    return executor


async def test_a_later_steps_rate_key_is_kept_and_sent_while_the_listing_goes_on(
    store: SqlJobStore,
) -> None:
    planner = PagedPlanner(items(9), 4, 7)  # three, then six shown
    h = Harness(store, planner=planner, executor=_resize_like(3))
    op = await h.create()
    planning = await first_rows_sent(h, planner)
    await h.clock.advance(h.config.poll_interval)
    await h.poller.run_once()  # the first three move on to their second step, on cloud:resize
    planner.go[0].set()  # the next page: its rows open more of the operation to dispatch
    async with asyncio.timeout(10):
        await planner.at[1].wait()
    assert "cloud:resize" in (await h.ops.get(op.id)).operation.rate_keys
    await dispatch_all(h)
    assert [(step, len(t)) for _, step, t in h.executor.calls if step == 1] == [(1, 3)]
    planner.go[1].set()
    async with asyncio.timeout(10):
        await planning
    view = await h.run(op.id)
    assert view.counts == {State.SUCCEEDED: 9}


async def test_a_later_steps_rate_key_outlives_the_end_of_the_listing(store: SqlJobStore) -> None:
    """Its rows are still on it when the summary is written: they are sent, not stuck."""
    planner = PagedPlanner(items(6), 4)
    h = Harness(store, planner=planner, executor=_resize_like(3))
    op = await h.create()
    planning = await first_rows_sent(h, planner)
    await h.clock.advance(h.config.poll_interval)
    await h.poller.run_once()
    planner.release.set()
    async with asyncio.timeout(10):
        await planning
    assert "cloud:resize" in (await h.ops.get(op.id)).operation.rate_keys
    view = await h.run(op.id, rounds=20)
    assert view.state is OperationState.SUCCEEDED
    assert view.counts == {State.SUCCEEDED: 6}


class TwoListings(FakePlanner):
    """The first listing waits at `cuts[0]` and fails there; the second waits at `cuts[1]`."""

    def __init__(self, entries: list[PlanEntry], *cuts: int) -> None:
        super().__init__(entries)
        self.cuts = cuts
        self.at = [asyncio.Event() for _ in cuts]
        self.go = [asyncio.Event() for _ in cuts]

    async def plan(self, operation: OperationRecord) -> AsyncIterator[PlanEntry]:
        self.plans.append(operation.id)
        attempt = len(self.plans) - 1
        for i, entry in enumerate(self.default):
            if attempt < len(self.cuts) and i == self.cuts[attempt]:
                self.at[attempt].set()
                await self.go[attempt].wait()
                if attempt == 0:
                    raise RuntimeError("page 2 failed")
            yield entry


async def test_a_listing_taken_up_again_shows_a_full_call_beyond_what_was_shown(
    store: SqlJobStore,
) -> None:
    """Four rows shown (and sent) before the listing failed, the fifth held back: taken up again,
    one more row does not show the held-back one alone (a call of one would take a call's share
    of its window); the rest go in full calls."""
    planner = TwoListings(items(9), 5, 6)
    h = Harness(store, planner=planner, executor=FakeExecutor(default_profile=PROFILE))
    op = await h.create()
    planning = asyncio.create_task(h.planning.run_once())
    async with asyncio.timeout(10):
        await planner.at[0].wait()
    await dispatch_all(h)
    assert [len(t) for _, _, t in h.executor.calls] == [3, 1]
    planner.go[0].set()
    async with asyncio.timeout(10):
        await planning  # postponed
    await h.clock.advance(h.config.plan_retry_delay * 2)
    planning = asyncio.create_task(h.planning.run_once())
    async with asyncio.timeout(10):
        await planner.at[1].wait()  # six rows written, the fifth and sixth unshown
    for _ in range(20):
        await asyncio.sleep(0.01)
        assert await h.dispatcher.run_once() == 0
    planner.go[1].set()
    async with asyncio.timeout(10):
        await planning
    view = await h.run(op.id)
    assert view.counts == {State.SUCCEEDED: 9}
    assert [len(t) for _, _, t in h.executor.calls] == [3, 1, 3, 2]
    assert h.executor.sent_twice() == []
