"""Helpers for the tests of operations dispatched while their listing goes on (D101)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from jobs_store_helpers import Harness

from jobs.ports import ActionProfile, PlanEntry, StepProfile
from jobs.records import OperationRecord
from jobs.store import SqlJobStore
from jobs.testing import FakeExecutor, FakePlanner

PROFILE = ActionProfile((StepProfile(max_batch=3),), poll_batch=10)


class PagedPlanner(FakePlanner):
    """Lists its entries in pages: before entry `cuts[k]` (or at the end, for a cut at the
    length) its first attempt sets `at[k]` and waits for `go[k]` (a cloud's next page); `fail`
    is raised at the last cut instead of listing the rest. Each attempt lists every entry."""

    def __init__(self, entries: list[PlanEntry], *cuts: int) -> None:
        super().__init__(entries)
        self.cuts = cuts
        self.at = [asyncio.Event() for _ in cuts]
        self.go = [asyncio.Event() for _ in cuts]
        self.fail: Exception | None = None

    @property
    def waiting(self) -> asyncio.Event:
        return self.at[0]

    @property
    def release(self) -> asyncio.Event:
        return self.go[0]

    async def _page(self, index: int) -> None:
        if index in self.cuts and len(self.plans) == 1:
            k = self.cuts.index(index)
            self.at[k].set()
            await self.go[k].wait()
            if self.fail is not None and k == len(self.cuts) - 1:
                raise self.fail

    async def plan(self, operation: OperationRecord) -> AsyncIterator[PlanEntry]:
        self.plans.append(operation.id)
        for i, entry in enumerate(self.default):
            await self._page(i)
            yield entry
        await self._page(len(self.default))


async def paged(
    store: SqlJobStore,
    entries: list[PlanEntry],
    *cuts: int,
    executor: FakeExecutor | None = None,
    **create: Any,
) -> tuple[PagedPlanner, Harness, OperationRecord]:
    """A harness whose planner lists `entries` in pages cut at `cuts` (`PagedPlanner`), its
    executor `executor` (by default one of three servers a call), and a stop created on it."""
    planner = PagedPlanner(entries, *cuts)
    h = Harness(store, planner=planner, executor=executor or FakeExecutor(default_profile=PROFILE))
    return planner, h, await h.create(**create)


async def nothing_sent_while_listing(h: Harness, planner: PagedPlanner, operation_id: str) -> None:
    """Plan until the planner waits for its next page: meanwhile nothing is dispatched and the
    operation is not open; then let the listing end."""
    planning = asyncio.create_task(h.planning.run_once())
    async with asyncio.timeout(10):
        await planner.waiting.wait()
    for _ in range(20):
        await asyncio.sleep(0.01)
        assert await h.dispatcher.run_once() == 0
    assert (await h.ops.get(operation_id)).operation.planned_at is None
    planner.release.set()
    async with asyncio.timeout(10):
        await planning


async def dispatch_all(h: Harness) -> None:
    """Dispatch until a call went, then whatever else may go, waiting for every call."""
    for _ in range(500):
        if await h.dispatcher.run_once():
            break
        await asyncio.sleep(0.01)
    await h.dispatcher.wait_idle()
    for _ in range(3):
        await h.dispatcher.run_once()
        await h.dispatcher.wait_idle()
        await asyncio.sleep(0.01)


async def first_rows_sent(h: Harness, planner: PagedPlanner) -> asyncio.Task[int]:
    """Start planning, wait until the planner waits for its next page, then dispatch."""
    planning = asyncio.create_task(h.planning.run_once())
    async with asyncio.timeout(10):
        await planner.waiting.wait()
    await dispatch_all(h)
    return planning


async def listing_fails(
    planner: PagedPlanner, planning: asyncio.Task[int], error: Exception, cut: int = 0
) -> None:
    """The listing fails at the page after cut `cut` (which it waits at), and the planning
    attempt ends (postponed or stopped, as the error says)."""
    planner.fail = error
    planner.go[cut].set()
    async with asyncio.timeout(10):
        await planning


async def history(store: SqlJobStore, operation_id: str) -> list[str]:
    """The operation's own events (`operation.*`), in order."""
    events = await store.list_events(operation_id, 0, 10_000)
    return [e.event for e in events if e.subjob_id is None]
