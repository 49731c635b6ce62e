"""Committing cloud answers: as soon as they arrive, many per transaction, never lost to a cancel.

Every executor call and poll ends with `Recorder.record(changes, call)`. Records queue up and one
writer commits whatever is queued in one transaction (`JobStore.apply_many`), so under load the
answers of many calls share a commit instead of each taking the database's write lock in turn;
with no load a record is committed at once (nothing waits for a batch to fill).

The caller's wait is shielded: if its task is cancelled (shutdown), the answer the cloud already
gave is still committed before the cancellation goes on. This is the "committed as soon as the
cloud answers" half of the write-ahead rule (the claim, committed before the call, is the other).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from jobs.clock import Clock
from jobs.ports import CallResult, JobStore
from jobs.records import Applied, Change
from jobs.states import TRANSITIONS, State

log = structlog.get_logger("jobs.recorder")

RETRY_DELAYS = (0.5, 2.0, 8.0)
_Item = tuple[Sequence[Change], CallResult | None, "asyncio.Future[Applied]"]


class Recorder:
    """`poll_due`, if given, hears when the rows a record leaves awaiting the cloud fall due for
    their next poll (the earliest of them), so the poll loop can wake then (D106)."""

    def __init__(
        self,
        store: JobStore,
        worker: str,
        clock: Clock,
        *,
        max_items: int = 200,
        poll_due: Callable[[datetime], None] | None = None,
    ) -> None:
        self.store = store
        self.worker = worker
        self.clock = clock
        self.max_items = max_items
        self.poll_due = poll_due
        self._queue: deque[_Item] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def record(self, changes: Sequence[Change], call: CallResult | None) -> Applied:
        future: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
        self._queue.append((changes, call, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="jobs-recorder")
        try:
            applied = await asyncio.shield(future)
        except asyncio.CancelledError:
            if not future.cancelled():
                await future  # the cloud answered: commit it, then honour the cancel
            raise
        _log(applied)
        if self.poll_due is not None and applied.applied and (due := next_poll(changes)):
            self.poll_due(due)
        return applied

    async def _drain(self) -> None:
        """Commit queued records until the queue is empty (runs only while there is work)."""
        try:
            while self._queue:
                count = min(self.max_items, len(self._queue))
                await self._commit([self._queue.popleft() for _ in range(count)])
        except asyncio.CancelledError:
            while self._queue:  # nobody will commit these: let their callers know
                self._queue.popleft()[2].cancel()
            raise

    async def _commit(self, items: list[_Item]) -> None:
        try:
            results = await self.store.apply_many(
                [(changes, call) for changes, call, _ in items], self.worker, self.clock.now()
            )
        except asyncio.CancelledError:
            for _, _, future in items:
                future.cancel()
            raise
        except Exception as exc:
            if len(items) == 1:
                await self._retry_one(items[0], exc)
                return
            failed = [(item, e) for item in items if (e := await self._commit_one(item))]
            for item, error in failed:  # one bad record must not hold up or sink the others
                await self._retry_one(item, error)
            return
        for (_, _, future), applied in zip(items, results, strict=True):
            if not future.done():
                future.set_result(applied)

    async def _commit_one(self, item: _Item) -> Exception | None:
        changes, call, future = item
        try:
            [applied] = await self.store.apply_many(
                [(changes, call)], self.worker, self.clock.now()
            )
        except Exception as exc:
            return exc
        if not future.done():
            future.set_result(applied)
        return None

    async def _retry_one(self, item: _Item, error: Exception) -> None:
        """A lone record that failed (the database blinked?): a few retries with backoff, then
        give up; its rows stay DISPATCHING/AWAITING unrenewed and the reaper takes them back."""
        for delay in RETRY_DELAYS:
            log.warning("record_failed", error=repr(error), retry_in=delay)
            await self.clock.sleep(delay)
            failure = await self._commit_one(item)
            if failure is None:
                return
            error = failure
        if not item[2].done():
            item[2].set_exception(error)


def next_poll(changes: Sequence[Change]) -> datetime | None:
    """The earliest time a row these changes leave AWAITING (accepted, or still running) is due
    to be polled; None if they leave none."""
    due: datetime | None = None
    for change in changes:
        to = change.from_state if change.event is None else TRANSITIONS[change.event][1]
        at = change.value("not_before")
        if to is State.AWAITING and isinstance(at, datetime) and (due is None or at < due):
            due = at
    return due


def _log(applied: Applied) -> None:
    if applied.lost:
        log.warning("outcome_lost_race", subjob_ids=list(applied.lost)[:20], lost=len(applied.lost))
    for op_id in applied.halted:
        log.warning("operation_halted", operation_id=op_id)
    for op_id in applied.finished:
        log.info("operation_finished", operation_id=op_id)
