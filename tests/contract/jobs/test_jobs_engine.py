"""The engine's loops end to end on a real store (SQLite and PostgreSQL), with a fake cloud."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest
from jobs_store_helpers import T0, Harness

from jobs.clock import FakeClock
from jobs.errors import PlanningError
from jobs.outcomes import Advance, Failed, Outcome, RetryLater, Split
from jobs.ports import (
    ActionProfile,
    FleetSize,
    PlanEntry,
    PlanItem,
    StepProfile,
    SubJobOutcomes,
)
from jobs.ratelimit import Budget, RateLimiter
from jobs.records import Batch, OperationRecord
from jobs.states import Event, OperationState, State
from jobs.store import SqlJobStore
from jobs.strategy import BlastRadius, Strategy, parse_amount
from jobs.testing import FakeExecutor, FakePlanner, FakeRateLimiter, items

pytestmark = pytest.mark.contract


def profile(max_batch: int, steps: int = 1) -> ActionProfile:
    return ActionProfile(tuple(StepProfile(max_batch) for _ in range(steps)), poll_batch=50)


async def test_a_campaign_runs_to_success_with_one_call_per_batch(store: SqlJobStore) -> None:
    h = Harness(
        store,
        planner=FakePlanner(items(25, skip={24: "excluded"})),
        executor=FakeExecutor(default_profile=profile(10)),
    )
    op = await h.create()
    view = await h.run(op.id)
    assert view.state is OperationState.SUCCEEDED
    assert view.counts == {State.SUCCEEDED: 24, State.SKIPPED: 1}
    assert [len(t) for _, _, t in h.executor.calls] == [10, 10, 4]
    assert h.executor.sent_twice() == []
    assert len(h.executor.polls) == 3  # one poll per cloud job
    events = await h.ops.events(op.id, 0, 1000)
    per_sub = Counter(e.event for e in events if e.subjob_id is not None)
    assert per_sub == {Event.CLAIM: 24, Event.ACCEPT: 24, Event.COMPLETE: 24}
    names = [e.event for e in events if e.subjob_id is None]
    # planned when its first rows open it to dispatch, while the listing goes on (D101)
    assert names == [
        "operation.created",
        "operation.planned",
        "operation.listing_ended",
        "operation.finished",
    ]
    calls = await store.list_calls(op.id)
    assert [c.outcome for c in calls] == ["accepted"] * 3
    assert all(c.cloud_job_id for c in calls)


async def test_the_sixth_failure_of_fifty_at_ten_percent_stops_it(store: SqlJobStore) -> None:
    executor = FakeExecutor(default_profile=profile(1))
    executor.script = {f"srv-{i:05d}": [Failed("Ecs.0209", "quota")] for i in range(10)}
    h = Harness(store, planner=FakePlanner(items(50)), executor=executor)
    strategy = Strategy(max_in_flight=1, max_errors=parse_amount("10%", "max_errors"))
    op = await h.create(strategy=strategy)
    view = await h.run(op.id)
    assert view.state is OperationState.STOPPED
    assert view.counts == {State.FAILED: 6, State.CANCELLED: 44}
    assert len(executor.calls) == 6
    failed = (await h.ops.subjobs(op.id, State.FAILED)).items
    assert {(s.error_code, s.error_message) for s in failed} == {("Ecs.0209", "quota")}


async def test_waves_run_in_order_and_pause_between(store: SqlJobStore) -> None:
    waves = tuple(parse_amount(w, "waves", minimum=1) for w in (1, "10%", "100%"))
    h = Harness(
        store, planner=FakePlanner(items(50)), executor=FakeExecutor(default_profile=profile(100))
    )
    op = await h.create(strategy=Strategy(waves=waves, pause_after_wave=True))
    for expected in ([1], [1, 5], [1, 5, 44]):
        for _ in range(3):
            await h.round()
        assert [len(t) for _, _, t in h.executor.calls] == expected
        view = await h.ops.get(op.id)
        if expected != [1, 5, 44]:
            assert view.state is OperationState.PAUSED
            await h.ops.resume(op.id, "ops")
    assert (await h.ops.get(op.id)).state is OperationState.SUCCEEDED


async def test_operations_sharing_a_rate_key_take_turns(store: SqlJobStore) -> None:
    limiter = FakeRateLimiter(headroom={"cloud:action": 4})
    executor = FakeExecutor(default_profile=profile(1), limiter=limiter)
    planner = FakePlanner()
    for name in ("a", "b", "c"):
        planner.set(name, items(10, prefix=f"{name}-"))
    h = Harness(store, planner=planner, executor=executor, limiter=limiter)
    for name in ("a", "b", "c"):
        await h.create(kind=name)
        await h.clock.advance(1)
    order: list[str] = []
    for _ in range(3):
        limiter.room["cloud:action"] = 4  # the window refills
        await h.round()
        order += [t[0][0] for _, _, t in executor.calls[len(order) :]]
    assert order == list("abcabcabcabc")


async def test_throttling_is_retried_and_never_fails_the_server(store: SqlJobStore) -> None:
    executor = FakeExecutor(default_profile=profile(5))
    executor.script = {"srv-00000": [RetryLater(delay=2.0, throttled=True, code="Common.1503")] * 3}
    h = Harness(store, planner=FakePlanner(items(3)), executor=executor)
    op = await h.create()
    view = await h.run(op.id)
    assert view.state is OperationState.SUCCEEDED
    [first] = [s for s in (await h.ops.subjobs(op.id)).items if s.target_id == "srv-00000"]
    assert (first.attempt, first.throttles, first.state) == (1, 3, State.SUCCEEDED)
    assert [len(t) for _, _, t in executor.calls] == [3, 1, 1, 1]


class BlamingExecutor(FakeExecutor):
    """A cloud that rejects any batch holding the locked server, without naming it."""

    async def submit(self, batch: Batch) -> SubJobOutcomes:
        if "srv-00005" in batch.target_ids:
            self.calls.append((batch.kind, batch.step, batch.target_ids))
            outcome: Outcome = (
                Split(reason="Ecs.0611 batch operation failed")
                if len(batch.subjobs) > 1
                else Failed("Ecs.0605", "locked")
            )
            return {s.id: outcome for s in batch.subjobs}
        return await super().submit(batch)


async def test_a_rejected_batch_is_bisected_down_to_the_culprit(store: SqlJobStore) -> None:
    executor = BlamingExecutor(default_profile=profile(8))
    h = Harness(store, planner=FakePlanner(items(8)), executor=executor)
    op = await h.create()
    view = await h.run(op.id)
    assert view.counts == {State.SUCCEEDED: 7, State.FAILED: 1}
    assert view.state is OperationState.COMPLETED_WITH_FAILURES
    sizes = [len(t) for _, _, t in executor.calls]
    assert sorted(sizes, reverse=True) == [8, 4, 4, 2, 2, 1, 1]
    assert executor.sent_twice() == []
    [bad] = (await h.ops.subjobs(op.id, State.FAILED)).items
    assert (bad.target_id, bad.error_code) == ("srv-00005", "Ecs.0605")


async def test_multi_step_actions_advance_through_their_steps(store: SqlJobStore) -> None:
    executor = FakeExecutor(default_profile=profile(10, steps=3), steps=3)
    h = Harness(store, planner=FakePlanner(items(4)), executor=executor)
    op = await h.create(kind="resize")
    view = await h.run(op.id)
    assert view.state is OperationState.SUCCEEDED
    assert [step for _, step, _ in executor.calls] == [0, 1, 2]
    assert all(n == 1 for n in executor.sent.values())
    assert len(executor.sent) == 4 * 3
    subs = (await h.ops.subjobs(op.id)).items
    assert {s.step for s in subs} == {2}
    events = await h.ops.events(op.id, 0, 1000)
    assert sum(e.event == Event.ADVANCE for e in events) == 8


async def test_a_dry_run_plans_and_estimates_without_sending(store: SqlJobStore) -> None:
    limiter = FakeRateLimiter()
    limiter.budgets["cloud:action"] = (Budget(2, 60.0),)
    h = Harness(
        store,
        planner=FakePlanner(items(6, skip={0: "excluded"})),
        executor=FakeExecutor(default_profile=profile(1)),
        limiter=limiter,
    )
    op = await h.create(dry_run=True)
    view = await h.run(op.id)
    assert view.state is OperationState.PLANNED
    assert h.executor.calls == []
    plan = await h.ops.plan(op.id)
    assert plan is not None
    assert (plan.targets, plan.skipped, plan.skipped_by_reason) == (5, 1, {"excluded": 1})
    [key] = plan.rate_keys
    assert (key.rate_key, key.calls, key.send_seconds) == ("cloud:action", 5, 120.0)
    assert plan.eta_seconds == pytest.approx(120.0)
    targets = (await h.ops.subjobs(op.id)).items
    assert [s.target_id for s in targets][:2] == ["srv-00000", "srv-00001"]


@pytest.mark.parametrize(
    ("guard", "fleet"),
    [(BlastRadius(max_servers=5), None), (BlastRadius(max_percent=Fraction(25)), 20)],
)
async def test_the_blast_radius_refuses_atomically(
    store: SqlJobStore, guard: BlastRadius, fleet: int | None
) -> None:
    entries = [*items(10), *([FleetSize("", fleet)] if fleet else [])]
    h = Harness(store, planner=FakePlanner(entries))
    op = await h.create(guard=guard)
    view = await h.run(op.id)
    assert view.state is OperationState.REFUSED
    assert view.operation.refused_reason is not None
    assert "blast radius" in view.operation.refused_reason
    assert view.counts == {}
    assert h.executor.calls == []


async def test_planning_errors_retry_then_refuse(store: SqlJobStore) -> None:
    h = Harness(
        store, planner=FakePlanner(items(3), error=RuntimeError("list failed"), error_after=1)
    )
    op = await h.create()
    for _ in range(3):
        await h.planning.run_once()
        await h.clock.advance(h.config.plan_retry_delay * 3)
    view = await h.ops.get(op.id)
    assert view.state is OperationState.REFUSED
    assert "list failed" in (view.operation.refused_reason or "")
    assert len(h.planner.plans) == 3
    assert view.counts == {}


async def test_a_planning_error_refuses_at_once(store: SqlJobStore) -> None:
    h = Harness(store, planner=FakePlanner(error=PlanningError("no such tag")))
    op = await h.create()
    await h.planning.run_once()
    view = await h.ops.get(op.id)
    assert view.state is OperationState.REFUSED
    assert view.operation.refused_reason == "planning refused: no such tag"


class WaitingPlanner(FakePlanner):
    """Yields its first items, then waits (like a planner waiting for a cloud's next page)."""

    def __init__(self, first: int, rest: int) -> None:
        super().__init__(items(first + rest))
        self.first = first
        self.release = asyncio.Event()
        self.waiting = asyncio.Event()

    async def plan(self, operation: OperationRecord) -> AsyncIterator[PlanEntry]:
        for i, entry in enumerate(self.default):
            if i == self.first:
                self.waiting.set()
                await self.release.wait()
            yield entry


async def test_rows_are_written_while_the_planner_waits(store: SqlJobStore) -> None:
    planner = WaitingPlanner(first=3, rest=2)
    h = Harness(store, planner=planner)
    op = await h.create(guard=BlastRadius(max_servers=100))  # refusable: held whole (D77)
    planning = asyncio.create_task(h.planning.run_once())
    async with asyncio.timeout(10):
        await planner.waiting.wait()
    for _ in range(500):  # the 3 rows arrive while the planner is still waiting
        written = (await store.list_subjobs(op.id, None, None, 10)).items
        if written:
            break
        await asyncio.sleep(0.01)
    assert [s.target_id for s in written] == ["srv-00000", "srv-00001", "srv-00002"]
    assert (await h.ops.get(op.id)).state is OperationState.PLANNING
    planner.release.set()
    async with asyncio.timeout(10):
        await planning
    view = await h.ops.get(op.id)
    assert view.operation.targets == 5
    assert view.counts == {State.PENDING: 5}


async def test_cancel_lets_calls_in_flight_finish(store: SqlJobStore) -> None:
    h = Harness(
        store,
        planner=FakePlanner(items(30)),
        executor=FakeExecutor(default_profile=profile(10), polls_to_complete=2),
    )
    op = await h.create(strategy=Strategy(max_in_flight=10))
    await h.round()
    view = await h.ops.cancel(op.id, "ops")
    assert view.state is OperationState.CANCELLING
    assert view.counts == {State.AWAITING: 10, State.CANCELLED: 20}
    view = await h.run(op.id)
    assert view.state is OperationState.CANCELLED
    assert view.counts == {State.SUCCEEDED: 10, State.CANCELLED: 20}
    assert view.operation.cancelled_by == "ops"


def _sends(executor: FakeExecutor) -> list[tuple[int, tuple[str, ...]]]:
    return [(step, targets) for _, step, targets in executor.calls]


async def test_max_in_flight_counts_servers_between_steps(store: SqlJobStore) -> None:
    """A server half-way through a multi-step action (stopped for a resize) is in flight: with
    max_in_flight 1 the next server's first step waits until the first's recipe is done."""
    executor = FakeExecutor(default_profile=profile(10, steps=3), steps=3)
    names = [f"srv-{i:05d}" for i in range(3)]
    # as on ECS: stop, then resize through another API (rate key), then start
    executor.poll_script = {
        name: [
            Advance(next_step=1, rate_key="cloud:resize", batch_key="r"),
            Advance(next_step=2, rate_key="cloud:action", batch_key="b"),
        ]
        for name in names
    }
    h = Harness(store, planner=FakePlanner(items(3)), executor=executor)
    op = await h.create(kind="resize", strategy=Strategy(max_in_flight=1))
    view = await h.run(op.id)
    assert view.state is OperationState.SUCCEEDED
    assert _sends(executor) == [(step, (name,)) for name in names for step in range(3)]


@pytest.mark.parametrize("stop", ["cancel", "pause", "max_errors"])
async def test_a_stop_lets_begun_servers_finish_their_steps(store: SqlJobStore, stop: str) -> None:
    """Cancel, pause and an error-budget stop begin no new server, but a server whose recipe
    has begun runs it to the end (a resize half-done would leave it stopped, or unconfirmed)."""
    executor = FakeExecutor(default_profile=profile(10, steps=3), steps=3)
    executor.poll_script = {"srv-00001": [Failed("Ecs.0013", "resize failed")]}
    strategy = Strategy(max_in_flight=2, max_errors=0 if stop == "max_errors" else None)
    h = Harness(store, planner=FakePlanner(items(6)), executor=executor)
    op = await h.create(kind="resize", strategy=strategy)
    await h.round()  # srv-0 and srv-1 sent; srv-0 advanced to step 1, srv-1 failed
    halted = {State.PENDING: 1, State.FAILED: 1, State.CANCELLED: 4}  # the budget is 0
    expected = halted if stop == "max_errors" else {State.PENDING: 5, State.FAILED: 1}
    assert (await h.ops.get(op.id)).counts == expected
    if stop == "cancel":
        await h.ops.cancel(op.id, "ops")
    elif stop == "pause":
        await h.ops.pause(op.id, "ops")
    for _ in range(6):
        await h.round()
    view = await h.ops.get(op.id)
    assert _sends(executor) == [
        (0, ("srv-00000", "srv-00001")),
        (1, ("srv-00000",)),
        (2, ("srv-00000",)),
    ]
    subs = {s.target_id: s for s in (await h.ops.subjobs(op.id)).items}
    assert subs["srv-00000"].state is State.SUCCEEDED
    if stop == "pause":
        assert view.state is OperationState.PAUSED
        assert view.counts == {State.SUCCEEDED: 1, State.FAILED: 1, State.PENDING: 4}
        await h.ops.resume(op.id, "ops")
        view = await h.run(op.id)
        assert view.counts == {State.SUCCEEDED: 5, State.FAILED: 1}
    else:
        assert view.operation.finished_at is not None
        assert view.state is (
            OperationState.CANCELLED if stop == "cancel" else OperationState.STOPPED
        )
        assert view.counts == {State.SUCCEEDED: 1, State.FAILED: 1, State.CANCELLED: 4}
    assert executor.sent_twice() == []


async def test_retry_failed_runs_the_failed_again(store: SqlJobStore) -> None:
    executor = FakeExecutor(default_profile=profile(10))
    executor.script = {"srv-00001": [Failed("Ecs.0001", "no")]}
    h = Harness(store, planner=FakePlanner(items(3)), executor=executor)
    op = await h.create()
    assert (await h.run(op.id)).state is OperationState.COMPLETED_WITH_FAILURES
    assert await h.ops.retry_failed(op.id, "ops") == 1
    view = await h.run(op.id)
    assert view.state is OperationState.SUCCEEDED
    assert executor.sent[("srv-00001", 0)] == 1


async def test_an_idempotency_key_returns_the_first_operation(store: SqlJobStore) -> None:
    h = Harness(store)
    first = await h.create(idempotency_key="k-1")
    again = await h.create(idempotency_key="k-1")
    assert again.id == first.id


@pytest.mark.parametrize("sent_before_crash", [False, True])
async def test_a_crash_mid_call_is_verified_never_resent(
    store: SqlJobStore, sent_before_crash: bool
) -> None:
    executor = FakeExecutor(
        default_profile=profile(10), hold=asyncio.Event(), hang_after_send=sent_before_crash
    )
    h = Harness(store, planner=FakePlanner(items(4)), executor=executor)
    op = await h.create()
    await h.planning.run_once()
    assert await h.dispatcher.run_once() == 4
    await asyncio.sleep(0)
    assert await h.dispatcher.drain(0) == 1  # "kill": the call is cancelled mid-flight
    assert (await h.ops.get(op.id)).counts == {State.DISPATCHING: 4}
    # restart: a new dispatcher for the same worker recovers what the old one held
    executor.hold = None
    restarted = Harness(store, planner=h.planner, executor=executor, clock=h.clock)
    assert await store.recover(restarted.config.worker, h.clock.now()) == 4
    view = await restarted.run(op.id)
    assert view.state is OperationState.SUCCEEDED
    assert executor.verifies == [tuple(f"srv-{i:05d}" for i in range(4))]
    assert executor.sent_twice() == []
    assert all(executor.sent[(f"srv-{i:05d}", 0)] == 1 for i in range(4))


async def test_the_plan_eta_matches_a_run_paced_by_the_real_limiter(store: SqlJobStore) -> None:
    """The ETA comes from the budgets; the engine, paced by the real limiter on a fake clock,
    takes about that long (the simulator bench checks the same against wall time)."""
    clock = FakeClock(T0)
    limiter = RateLimiter(clock)
    limiter.configure("cloud:action", [Budget(10, 60.0)])
    step = ActionProfile((StepProfile(max_batch=1, seconds=8.0),), poll_batch=50)
    executor = FakeExecutor(default_profile=step, limiter=limiter)
    h = Harness(
        store, planner=FakePlanner(items(50)), executor=executor, limiter=limiter, clock=clock
    )
    op = await h.create()
    view = await h.run(op.id, rounds=200)
    assert view.state is OperationState.SUCCEEDED
    plan = view.operation.summary
    assert plan is not None
    assert plan.eta_seconds == pytest.approx(4 * 60.0 + 10.0)  # 4 more windows + 2 polls
    elapsed = (view.operation.finished_at - T0).total_seconds()  # type: ignore[operator]
    assert abs(elapsed - plan.eta_seconds) <= 0.15 * plan.eta_seconds
    assert len(executor.calls) == 50


async def test_a_target_the_schema_cannot_hold_refuses_the_plan(store: SqlJobStore) -> None:
    h = Harness(store, planner=FakePlanner([*items(3), PlanItem("x" * 300, "cloud:action", "b")]))
    op = await h.create()
    await h.planning.run_once()
    view = await h.ops.get(op.id)
    assert view.state is OperationState.REFUSED
    assert "target_id longer than 255" in (view.operation.refused_reason or "")
    assert view.counts == {}


class _SlowClaims:
    """The store, with a claim that commits and then takes a while to come back."""

    def __init__(self, store: SqlJobStore) -> None:
        self._store = store
        self.committed = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def claim_batches(self, *args: object, **kwargs: object) -> list[Batch]:
        batches: list[Batch] = await self._store.claim_batches(*args, **kwargs)  # type: ignore[arg-type]
        if batches:
            self.committed.set()
            await self.release.wait()
        return batches


async def _claim_under_way(
    store: SqlJobStore,
) -> tuple[Harness, OperationRecord, _SlowClaims, asyncio.Task[int]]:
    """A planned 3-server operation whose dispatch round has committed its claim and not yet
    come back from it (until `slow.release` is set)."""
    slow = _SlowClaims(store)
    h = Harness(slow, planner=FakePlanner(items(3)))  # type: ignore[arg-type]
    op = await h.create()
    await h.planning.run_once()
    round_ = asyncio.create_task(h.dispatcher.run_once())
    await slow.committed.wait()
    return h, op, slow, round_


async def test_a_drain_waits_for_the_calls_of_a_claim_under_way(store: SqlJobStore) -> None:
    """A stop that begins while a round's claim is committing: the calls that claim starts are
    in flight too, so the drain waits for them; none is left running after it."""
    h, op, slow, round_ = await _claim_under_way(store)
    drain = asyncio.create_task(h.dispatcher.drain(60.0))
    await asyncio.sleep(0.05)
    assert not drain.done()  # the round is still to start its calls
    slow.release.set()
    assert await round_ == 3
    assert await drain == 0  # waited for, not cancelled
    assert h.dispatcher.in_flight == 0
    assert [targets for _, _, targets in h.executor.calls] == [
        tuple(f"srv-{i:05d}" for i in range(3))
    ]
    counts = (await h.ops.get(op.id)).counts
    assert counts == {State.AWAITING: 3}  # every answer recorded before the drain returned


async def test_a_drain_past_its_grace_starts_nothing_a_late_claim_returns(
    store: SqlJobStore,
) -> None:
    """The grace runs out while a round's claim is still committing: what it claimed is not
    sent after the drain returned (its rows stay DISPATCHING, verified on the next start)."""
    h, op, slow, round_ = await _claim_under_way(store)
    drain = asyncio.create_task(h.dispatcher.drain(1.0))
    async with asyncio.timeout(10):
        while not drain.done():  # the grace passes (once the drain is asleep on it)
            await asyncio.sleep(0.01)
            await h.clock.advance(1.0)
    assert drain.result() == 0
    slow.release.set()
    assert await round_ == 3
    await asyncio.sleep(0.05)
    assert h.dispatcher.in_flight == 0
    assert h.executor.calls == []
    assert (await h.ops.get(op.id)).counts == {State.DISPATCHING: 3}
    assert await store.recover(h.config.worker, h.clock.now()) == 3  # verified, then sent


async def test_a_drain_waits_for_calls_without_spinning(
    store: SqlJobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    hold = asyncio.Event()
    h = Harness(store, planner=FakePlanner(items(1)), executor=FakeExecutor(hold=hold))
    await h.create()
    await h.planning.run_once()
    assert await h.dispatcher.run_once() == 1
    real, waits = asyncio.wait, []

    async def counting(*args: Any, **kwargs: Any) -> Any:
        waits.append(1)
        return await real(*args, **kwargs)

    monkeypatch.setattr(asyncio, "wait", counting)
    drain = asyncio.create_task(h.dispatcher.drain(60.0))
    await asyncio.sleep(0.2)
    hold.set()
    assert await drain == 0
    assert len(waits) <= 3  # woken by the call's end, not looping meanwhile


async def test_a_process_holds_at_most_max_servers_in_flight(store: SqlJobStore) -> None:
    """However generous the budget, the sub-jobs in this process's calls at once are bounded
    (each is in memory until its answer is committed); the rest wait in the database."""
    hold = asyncio.Event()
    config = replace(Harness(store).config, max_servers_in_flight=25)
    h = Harness(
        store,
        planner=FakePlanner(items(100)),
        executor=FakeExecutor(default_profile=profile(10), hold=hold),
        config=config,
    )
    op = await h.create()
    await h.planning.run_once()
    assert await h.dispatcher.run_once() == 25
    assert await h.dispatcher.run_once() == 0  # nothing more while those are held
    assert (await h.ops.get(op.id)).counts == {State.DISPATCHING: 25, State.PENDING: 75}
    hold.set()
    await h.dispatcher.wait_idle()
    assert await h.dispatcher.run_once() == 25
    await h.dispatcher.wait_idle()
