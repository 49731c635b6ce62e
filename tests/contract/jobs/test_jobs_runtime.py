"""The runtime: its loops on a real store, woken by the API, draining and recovering.

These run on the real clock with short idle intervals; every wait is bounded by a timeout so a
broken runtime fails the test instead of hanging it (no assertion is about speed).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from jobs_store_helpers import WORKER

from jobs.config import EngineConfig
from jobs.loops.runtime import Runtime
from jobs.operations import Operations
from jobs.outcomes import Accepted, Completed, Outcome, StillRunning
from jobs.ports import ActionProfile, PlanEntry, StepProfile, SubJobOutcomes
from jobs.records import Batch, NewOperation, OperationRecord, OperationView
from jobs.states import OperationState, State
from jobs.store import SqlJobStore
from jobs.testing import FakeExecutor, FakePlanner, FakeRateLimiter, items

pytestmark = pytest.mark.contract

FAST = dict(
    poll_interval=0.02,
    dispatch_idle=0.02,
    poll_idle=0.02,
    reap_interval=0.5,
    lease_ttl=30.0,
    drain_grace=5.0,
)


def config(**overrides: float) -> EngineConfig:
    return EngineConfig(worker=WORKER, **{**FAST, **overrides})  # type: ignore[arg-type]


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    """Poll `check` (a database read, nothing to wait on) until it holds, at most `seconds`."""
    async with asyncio.timeout(seconds):
        while True:
            if await check():
                return
            await asyncio.sleep(0.01)


async def finished(ops: Operations, op_id: str) -> OperationView:
    view: OperationView | None = None

    async def done() -> bool:
        nonlocal view
        view = await ops.get(op_id)
        return view.operation.finished_at is not None

    await until(done)
    assert view is not None
    return view


def executor(**kw: object) -> FakeExecutor:
    profile = ActionProfile((StepProfile(5),), poll_batch=20)
    return FakeExecutor(default_profile=profile, **kw)  # type: ignore[arg-type]


async def run_to_end(
    store: SqlJobStore, fake: FakeExecutor, servers: int, **overrides: float
) -> tuple[OperationView, Runtime]:
    """One stop of `servers` created through the API on a runtime, to its end."""
    runtime = Runtime(
        store, FakePlanner(items(servers)), fake, FakeRateLimiter(), config=config(**overrides)
    )
    async with runtime:
        ops = Operations(store, on_created=runtime.wake_planner, on_changed=runtime.wake)
        view, _ = await ops.create(NewOperation(kind="stop", created_by="ops-token"))
        return await finished(ops, view.operation.id), runtime


async def test_an_operation_created_through_the_api_runs_to_the_end(store: SqlJobStore) -> None:
    fake = executor()
    # the planner idles for a minute: only the API's wake-up can get this test done in time
    done, runtime = await run_to_end(store, fake, 12, plan_idle=60.0)
    assert done.state is OperationState.SUCCEEDED
    assert done.counts == {State.SUCCEEDED: 12}
    assert fake.sent_twice() == []
    assert not runtime.running


async def test_stop_drains_in_flight_calls_within_the_grace(store: SqlJobStore) -> None:
    hold = asyncio.Event()
    fake = executor(hold=hold)
    runtime = Runtime(store, FakePlanner(items(5)), fake, FakeRateLimiter(), config=config())
    ops = Operations(store, on_created=runtime.wake_planner)
    await runtime.start()
    view, _ = await ops.create(NewOperation(kind="stop", created_by="t"))

    async def dispatching() -> bool:
        return runtime.dispatcher.in_flight == 1

    await until(dispatching)
    stopping = asyncio.create_task(runtime.stop(grace=20.0))
    await asyncio.sleep(0.05)
    hold.set()  # the cloud answers while we drain: the answer must be recorded
    await stopping
    counts = (await ops.get(view.operation.id)).counts
    assert State.DISPATCHING not in counts
    assert counts.get(State.AWAITING, 0) + counts.get(State.SUCCEEDED, 0) == 5


@pytest.mark.parametrize("sent_before_crash", [False, True])
async def test_a_stop_past_the_grace_is_recovered_by_the_next_start(
    store: SqlJobStore, sent_before_crash: bool
) -> None:
    fake = executor(hold=asyncio.Event(), hang_after_send=sent_before_crash)
    planner = FakePlanner(items(5))
    first = Runtime(store, planner, fake, FakeRateLimiter(), config=config())
    ops = Operations(store, on_created=first.wake_planner)
    await first.start()
    view, _ = await ops.create(NewOperation(kind="stop", created_by="t"))

    async def dispatching() -> bool:
        return first.dispatcher.in_flight == 1

    await until(dispatching)
    await first.stop(grace=0.05)  # the call never answers: cancelled, rows left DISPATCHING
    assert (await ops.get(view.operation.id)).counts == {State.DISPATCHING: 5}
    fake.hold = None
    second = Runtime(store, planner, fake, FakeRateLimiter(), config=config())
    async with second:
        done = await finished(ops, view.operation.id)
    assert done.state is OperationState.SUCCEEDED
    assert len(fake.verifies) == 1  # read the cloud before anything else
    assert fake.sent_twice() == []
    assert all(fake.sent[(f"srv-{i:05d}", 0)] == 1 for i in range(5))


class SlowFirstPlanner(FakePlanner):
    """Plans a `reboot` only once `listed` is set (a cloud listing that takes its time)."""

    def __init__(self, listed: asyncio.Event) -> None:
        super().__init__(items(3))
        self.listed = listed

    async def plan(self, operation: OperationRecord) -> AsyncIterator[PlanEntry]:
        if operation.kind == "reboot":
            await self.listed.wait()
        async for entry in super().plan(operation):
            yield entry


async def test_a_slow_planning_does_not_hold_up_another_operation(store: SqlJobStore) -> None:
    listed = asyncio.Event()
    runtime = Runtime(
        store, SlowFirstPlanner(listed), executor(), FakeRateLimiter(), config=config()
    )
    async with runtime:
        ops = Operations(store, on_created=runtime.wake_planner, on_changed=runtime.wake)
        slow, _ = await ops.create(NewOperation(kind="reboot", created_by="t"))
        quick, _ = await ops.create(NewOperation(kind="stop", created_by="t"))
        done = await finished(ops, quick.operation.id)  # planned while the first one waits
        assert done.state is OperationState.SUCCEEDED
        assert (await ops.get(slow.operation.id)).operation.planned_at is None
        listed.set()
        assert (await finished(ops, slow.operation.id)).state is OperationState.SUCCEEDED


class SlowRebootPolls(FakeExecutor):
    """A `reboot`'s polls answer only once `answer` is set (a cloud job read that hangs)."""

    def __init__(self, polling: asyncio.Event, answer: asyncio.Event) -> None:
        super().__init__(default_profile=ActionProfile((StepProfile(5),), poll_batch=20))
        self.polling, self.answer = polling, answer

    async def poll(self, batch: Batch) -> SubJobOutcomes:
        if batch.kind == "reboot":
            self.polling.set()
            await self.answer.wait()
        return await super().poll(batch)


async def test_a_slow_poll_does_not_hold_up_the_polls_of_another_operation(
    store: SqlJobStore,
) -> None:
    polling, answer = asyncio.Event(), asyncio.Event()
    fake = SlowRebootPolls(polling, answer)
    runtime = Runtime(store, FakePlanner(items(3)), fake, FakeRateLimiter(), config=config())
    async with runtime:
        ops = Operations(store, on_created=runtime.wake_planner, on_changed=runtime.wake)
        slow, _ = await ops.create(NewOperation(kind="reboot", created_by="t"))
        async with asyncio.timeout(30):
            await polling.wait()
        quick, _ = await ops.create(NewOperation(kind="stop", created_by="t"))
        # its rows fall due while the reboot's poll hangs: they are polled all the same
        done = await finished(ops, quick.operation.id)
        assert done.state is OperationState.SUCCEEDED
        assert (await ops.get(slow.operation.id)).operation.finished_at is None
        answer.set()
        assert (await finished(ops, slow.operation.id)).state is OperationState.SUCCEEDED


class JoblessPolls(FakeExecutor):
    """One server per call with no cloud job (a Nova dialect): the first poll answers only once
    `answer` is set, and the calls after the first are answered once it has begun."""

    def __init__(self, polling: asyncio.Event, answer: asyncio.Event) -> None:
        super().__init__(default_profile=ActionProfile((StepProfile(1),), poll_batch=20))
        self.polling, self.answer = polling, answer
        self.at_once = self.most_at_once = 0
        self.sizes: list[int] = []

    async def submit(self, batch: Batch) -> SubJobOutcomes:
        if batch.target_ids != ("srv-00000",):
            await self.polling.wait()
        return {s.id: Accepted(cloud_job_id=None, poll_after=0.0) for s in batch.subjobs}

    async def poll(self, batch: Batch) -> SubJobOutcomes:
        self.at_once += 1
        self.most_at_once = max(self.most_at_once, self.at_once)
        self.sizes.append(len(batch.subjobs))
        try:
            if not self.polling.is_set():
                self.polling.set()
                await self.answer.wait()
            return {s.id: Completed() for s in batch.subjobs}
        finally:
            self.at_once -= 1


async def test_rows_due_during_a_poll_of_their_group_go_together_in_the_next_one(
    store: SqlJobStore,
) -> None:
    polling, answer = asyncio.Event(), asyncio.Event()
    fake = JoblessPolls(polling, answer)
    runtime = Runtime(store, FakePlanner(items(6)), fake, FakeRateLimiter(), config=config())
    async with runtime:
        ops = Operations(store, on_created=runtime.wake_planner, on_changed=runtime.wake)
        view, _ = await ops.create(NewOperation(kind="stop", created_by="t"))
        async with asyncio.timeout(30):
            await polling.wait()

        async def due() -> bool:  # the five later calls are answered, their rows due
            page = await store.list_subjobs(view.operation.id, State.AWAITING, None, 100)
            return len(page.items) == 6

        await until(due)
        await asyncio.sleep(0.2)  # rounds of the poll loop while the first poll hangs
        answer.set()
        assert (await finished(ops, view.operation.id)).state is OperationState.SUCCEEDED
    assert fake.most_at_once == 1  # never a second listing of the group's servers beside it
    assert fake.sizes == [1, 5]


class PollLater(FakeExecutor):
    """Calls accepted with their first poll due `after` seconds later; each row is still running
    at its first poll (due again `after` seconds after that poll left) and done at its second."""

    def __init__(self, after: float) -> None:
        super().__init__(default_profile=ActionProfile((StepProfile(5),), poll_batch=20))
        self.after = after
        self.seen: set[int] = set()

    async def submit(self, batch: Batch) -> SubJobOutcomes:
        return {s.id: Accepted(cloud_job_id=None, poll_after=self.after) for s in batch.subjobs}

    async def poll(self, batch: Batch) -> SubJobOutcomes:
        self.polls.append((None, batch.target_ids))
        out: dict[int, Outcome] = {}
        for s in batch.subjobs:
            out[s.id] = Completed() if s.id in self.seen else StillRunning(poll_after=self.after)
            self.seen.add(s.id)
        return out


async def test_rows_are_polled_when_they_fall_due_not_on_the_poll_loops_next_idle_round(
    store: SqlJobStore,
) -> None:
    # the poll loop idles for a minute: only being woken at the rows' due times gets it done
    fake = PollLater(after=0.3)
    done, _ = await run_to_end(store, fake, 3, poll_idle=60.0)
    assert done.state is OperationState.SUCCEEDED
    assert done.counts == {State.SUCCEEDED: 3}
    assert len(fake.polls) == 2  # each poll at its time: none early, none missed
