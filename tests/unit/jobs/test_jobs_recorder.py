"""The recorder commits cloud answers promptly, several per transaction, and survives cancels."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import pytest

from jobs.clock import FakeClock
from jobs.loops.recorder import RETRY_DELAYS, Recorder
from jobs.ports import CallResult
from jobs.records import Applied, Change
from jobs.states import Event, State


class FakeStore:
    """Only what the recorder uses: `apply_many`, with a switch to block or fail it."""

    def __init__(self) -> None:
        self.transactions: list[list[int | None]] = []
        self.gate: asyncio.Event | None = None
        self.fail_for: set[int] = set()  # call ids whose records raise
        self.failures_left = 0  # transient failures of the next transactions

    async def apply_many(
        self,
        items: Sequence[tuple[Sequence[Change], CallResult | None]],
        worker: str,
        now: datetime,
    ) -> list[Applied]:
        if self.gate is not None:
            await self.gate.wait()
        ids = [None if call is None else call.call_id for _, call in items]
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("database went away")
        if self.fail_for & {i for i in ids if i is not None}:
            raise ValueError("bad record")
        self.transactions.append(ids)
        return [Applied(len(changes)) for changes, _ in items]


def change(i: int) -> Change:
    return Change(i, "op", f"s{i}", State.DISPATCHING, Event.COMPLETE)


def call(i: int) -> CallResult:
    return CallResult(call_id=i, outcome="completed")


async def test_records_that_arrive_together_share_a_transaction() -> None:
    store = FakeStore()
    store.gate = asyncio.Event()
    recorder = Recorder(store, "w", FakeClock())  # type: ignore[arg-type]
    first = asyncio.create_task(recorder.record([change(1)], call(1)))
    await asyncio.sleep(0)  # the writer takes record 1 and waits on the database
    rest = [asyncio.create_task(recorder.record([change(i)], call(i))) for i in range(2, 6)]
    await asyncio.sleep(0)
    store.gate.set()
    results = await asyncio.gather(first, *rest)
    assert [r.applied for r in results] == [1] * 5
    assert store.transactions == [[1], [2, 3, 4, 5]]


async def test_a_cancelled_caller_still_gets_its_answer_committed() -> None:
    store = FakeStore()
    store.gate = asyncio.Event()
    recorder = Recorder(store, "w", FakeClock())  # type: ignore[arg-type]
    task = asyncio.create_task(recorder.record([change(1)], call(1)))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    assert not task.done()  # still waiting for the commit
    store.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store.transactions == [[1]]


async def test_one_bad_record_does_not_sink_the_others() -> None:
    store = FakeStore()
    store.gate = asyncio.Event()
    store.fail_for = {3}
    clock = FakeClock()
    recorder = Recorder(store, "w", clock)  # type: ignore[arg-type]
    tasks = [asyncio.create_task(recorder.record([change(i)], call(i))) for i in range(1, 5)]
    await asyncio.sleep(0)
    store.gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    # the good ones are committed at once, without waiting for the bad one's retries
    assert [t.done() for t in tasks] == [True, True, False, True]
    assert store.transactions == [[1], [2], [4]]
    for _ in RETRY_DELAYS:
        await clock.advance(max(RETRY_DELAYS))
    with pytest.raises(ValueError, match="bad record"):
        await tasks[2]


async def test_a_transient_failure_is_retried() -> None:
    store = FakeStore()
    store.failures_left = 2
    clock = FakeClock()
    recorder = Recorder(store, "w", clock)  # type: ignore[arg-type]
    task = asyncio.create_task(recorder.record([change(7)], call(7)))
    for _ in range(10):
        await clock.advance(max(RETRY_DELAYS))
        if task.done():
            break
    assert (await task).applied == 1
    assert store.transactions == [[7]]
