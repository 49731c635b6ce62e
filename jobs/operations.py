"""The operation API the product exposes (REST, CLI, scheduled policies): a thin, typed layer
over the store that derives the operation's state from its counts and wakes the runtime.

Every method that changes something takes `by` (the caller's token name), which the event history
keeps. Planning is asynchronous: `create` returns at once in state PLANNING and the planning loop
resolves the targets; a dry run stops at PLANNED with its plan (targets, skipped with reasons,
calls per rate key, ETA) in `plan()` and its would-be sub-jobs in `subjobs()`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import datetime

from jobs.approval import Decision
from jobs.clock import Clock, SystemClock
from jobs.errors import NotFound
from jobs.ports import JobStore
from jobs.records import (
    EventRecord,
    NewOperation,
    OperationRecord,
    OperationView,
    Page,
    PlanSummary,
    SubJobRecord,
)
from jobs.states import State, derive_operation_state

MAX_PAGE = 1000


class Operations:
    def __init__(
        self,
        store: JobStore,
        clock: Clock | None = None,
        *,
        on_created: Callable[[], None] | None = None,
        on_changed: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self._on_created = on_created  # e.g. Runtime.wake_planner
        self._on_changed = on_changed  # e.g. Runtime.wake

    def _view(self, op: OperationRecord, counts: dict[State, int]) -> OperationView:
        return OperationView(op, counts, derive_operation_state(counts, op.flags))

    async def create(self, new: NewOperation) -> tuple[OperationView, bool]:
        """Create (or, with a known idempotency key, return the earlier one: created=False)."""
        op, created = await self.store.create_operation(new, self.clock.now())
        if created and self._on_created is not None:
            self._on_created()
        view = self._view(op, {}) if created else await self.get(op.id)
        return view, created

    async def get(self, operation_id: str) -> OperationView:
        """The operation with its counts and derived state, read from one snapshot."""
        view = await self.store.get_view(operation_id)
        if view is None:
            raise NotFound(f"operation {operation_id} not found")
        return view

    async def list(self, cursor: str | None = None, limit: int = 50) -> Page[OperationView]:
        return await self.store.list_views(cursor, min(max(1, limit), MAX_PAGE))

    async def plan(self, operation_id: str) -> PlanSummary | None:
        """The plan (None while planning): targets, skipped by reason, calls per key, ETA."""
        return (await self.get(operation_id)).operation.summary

    async def subjobs(
        self,
        operation_id: str,
        state: State | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[SubJobRecord]:
        await self.get(operation_id)
        return await self.store.list_subjobs(
            operation_id, state, cursor, min(max(1, limit), MAX_PAGE)
        )

    async def events(
        self, operation_id: str, after: int = 0, limit: int = 500
    ) -> builtins.list[EventRecord]:
        """History after event id `after` (a progress stream polls this with the last id seen)."""
        await self.get(operation_id)
        return await self.store.list_events(operation_id, after, min(max(1, limit), MAX_PAGE))

    async def follow(
        self, operation_id: str, after: int = 0, limit: int = 500
    ) -> tuple[builtins.list[EventRecord], OperationView]:
        """History after event id `after` and the operation, read from one snapshot: with fewer
        than `limit` rows, the view is the operation as of the newest history row, so a stream
        that numbers its events by history position (`fleet.api.events`) never pairs a
        position with a view from before or after it."""
        found = await self.store.follow(operation_id, after, min(max(1, limit), MAX_PAGE))
        if found is None:
            raise NotFound(f"operation {operation_id} not found")
        return found

    async def finished_after(
        self, after: tuple[datetime, str] | None = None, limit: int = 100
    ) -> builtins.list[OperationRecord]:
        """Operations that acted and finished after the keyset `after` (finished_at, id), in the
        order they finished: a reader that keeps the last one's keyset sees each once."""
        return await self.store.finished_after(after, min(max(1, limit), MAX_PAGE))

    async def unfinished(self, kinds: Sequence[str]) -> builtins.list[OperationRecord]:
        """Operations of `kinds` that may still act (not finished, not dry runs)."""
        return await self.store.unfinished(kinds)

    def _changed(self) -> None:
        if self._on_changed is not None:
            self._on_changed()

    async def cancel(self, operation_id: str, by: str) -> OperationView:
        await self.store.cancel(operation_id, by, self.clock.now())
        self._changed()
        return await self.get(operation_id)

    async def pause(self, operation_id: str, by: str) -> OperationView:
        await self.store.set_paused(operation_id, True, by, self.clock.now())
        return await self.get(operation_id)

    async def resume(self, operation_id: str, by: str) -> OperationView:
        await self.store.set_paused(operation_id, False, by, self.clock.now())
        self._changed()
        return await self.get(operation_id)

    async def approve(self, operation_id: str, by: str, note: str | None = None) -> OperationView:
        """Let a pending operation run (`by` must not be the caller that created it)."""
        await self.store.decide(operation_id, Decision.APPROVED, by, note, self.clock.now())
        self._changed()
        return await self.get(operation_id)

    async def reject(self, operation_id: str, by: str, note: str | None = None) -> OperationView:
        """End a pending operation: every sub-job cancelled, nothing sent."""
        await self.store.decide(operation_id, Decision.REJECTED, by, note, self.clock.now())
        return await self.get(operation_id)

    async def retry_failed(
        self, operation_id: str, by: str, *, include_unknown: bool = False
    ) -> int:
        """Requeue the failed sub-jobs, and the unknown ones only when `include_unknown`."""
        count = await self.store.retry_failed(
            operation_id, by, self.clock.now(), include_unknown=include_unknown
        )
        self._changed()
        return count
