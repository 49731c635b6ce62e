"""The job store: ALL of the engine's SQL, behind one object, on SQLite or PostgreSQL.

`SqlJobStore` implements `jobs.ports.JobStore`. The SQL itself lives in sibling modules so each
stays readable: `ops` (operations: create, read, page, control), `requeue` (retry-failed), `planning`, `claims` (claim,
apply, poll leases), `leases` (reap, recover, heartbeats, named leases), `settle` (error budget,
waves, finishing) and `base` (row conversion, events). Nothing outside the `jobs.store` package
touches SQLAlchemy; callers get frozen records (`jobs.records`).

Times are passed in (`now`), never read here, so a fake clock drives the whole engine in tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import sqlalchemy as sa

from jobs.approval import Decision
from jobs.ports import CallResult, NewSubJob, PlanProgress
from jobs.records import (
    ActiveOperation,
    Applied,
    Batch,
    CallTotal,
    Change,
    ClaimRequest,
    CloudCallRecord,
    EventRecord,
    NewOperation,
    OperationRecord,
    OperationView,
    Page,
    PlanSummary,
    SubJobRecord,
)
from jobs.states import OperationState, State
from jobs.store import approvals as store_approvals
from jobs.store import claims as store_claims
from jobs.store import feed as store_feed
from jobs.store import leases as store_leases
from jobs.store import ops as store_ops
from jobs.store import planning as store_planning
from jobs.store import requeue as store_requeue
from jobs.store import streaming as store_streaming
from jobs.store import totals
from jobs.store.base import to_call
from jobs.store.db import Database
from jobs.store.models import CLOUD_CALLS, METADATA


class SqlJobStore:
    """The engine's persistence (see the module docstring). One per process; cheap to share."""

    def __init__(self, url: str, *, pool_size: int = 10, locked_workers: bool = False) -> None:
        """`locked_workers`: every engine on this database holds its worker name's advisory lock
        (PostgreSQL; `open_fleet` takes it), so a worker without it is dead and the reaper takes
        over what it held at once (`jobs.store.liveness`)."""
        self.db = Database(url, pool_size=pool_size)
        self.locked_workers = locked_workers

    async def close(self) -> None:
        await self.db.dispose()

    async def create_schema(self) -> None:
        """Create the tables straight from the models (throwaway databases; production and the
        embedded default use the Alembic migrations, which a test keeps identical)."""
        async with self.db.engine.begin() as conn:
            await conn.run_sync(METADATA.create_all)

    # --- operations ---------------------------------------------------------------------------

    async def create_operation(
        self, new: NewOperation, now: datetime
    ) -> tuple[OperationRecord, bool]:
        return await store_ops.create_operation(self.db, new, now)

    async def get_operation(self, operation_id: str) -> OperationRecord | None:
        return await store_ops.get_operation(self.db, operation_id)

    async def list_operations(self, cursor: str | None, limit: int) -> Page[OperationRecord]:
        return await store_ops.list_operations(self.db, cursor, limit)

    async def get_view(self, operation_id: str) -> OperationView | None:
        return await store_ops.get_view(self.db, operation_id)

    async def list_views(self, cursor: str | None, limit: int) -> Page[OperationView]:
        return await store_ops.list_views(self.db, cursor, limit)

    async def counts(self, operation_ids: Sequence[str]) -> dict[str, dict[State, int]]:
        return await store_ops.counts(self.db, operation_ids)

    async def list_subjobs(
        self, operation_id: str, state: State | None, cursor: str | None, limit: int
    ) -> Page[SubJobRecord]:
        return await store_ops.list_subjobs(self.db, operation_id, state, cursor, limit)

    async def list_events(self, operation_id: str, after: int, limit: int) -> list[EventRecord]:
        return await store_ops.list_events(self.db, operation_id, after, limit)

    async def follow(
        self, operation_id: str, after: int, limit: int
    ) -> tuple[list[EventRecord], OperationView] | None:
        return await store_ops.follow(self.db, operation_id, after, limit)

    async def finished_after(
        self, after: tuple[datetime, str] | None, limit: int
    ) -> list[OperationRecord]:
        return await store_feed.finished_after(self.db, after, limit)

    async def unfinished(self, kinds: Sequence[str]) -> list[OperationRecord]:
        return await store_feed.unfinished(self.db, kinds)

    async def list_calls(self, operation_id: str) -> list[CloudCallRecord]:
        stmt = (
            sa.select(CLOUD_CALLS)
            .where(CLOUD_CALLS.c.operation_id == operation_id)
            .order_by(CLOUD_CALLS.c.id)
        )
        async with self.db.read() as conn:
            return [to_call(r._mapping) for r in (await conn.execute(stmt)).all()]

    async def cancel(self, operation_id: str, by: str, now: datetime) -> OperationRecord:
        return await store_ops.cancel(self.db, operation_id, by, now)

    async def set_paused(
        self, operation_id: str, paused: bool, by: str, now: datetime
    ) -> OperationRecord:
        return await store_ops.set_paused(self.db, operation_id, paused, by, now)

    async def decide(
        self, operation_id: str, decision: Decision, by: str, note: str | None, now: datetime
    ) -> OperationRecord:
        return await store_approvals.decide(self.db, operation_id, decision, by, note, now)

    async def expire_approvals(self, now: datetime) -> int:
        return await store_approvals.expire(self.db, now)

    async def retry_failed(
        self, operation_id: str, by: str, now: datetime, *, include_unknown: bool = False
    ) -> int:
        return await store_requeue.retry_failed(
            self.db, operation_id, by, now, include_unknown=include_unknown
        )

    # --- planning -----------------------------------------------------------------------------

    async def claim_planning(
        self, worker: str, now: datetime, lease_until: datetime
    ) -> OperationRecord | None:
        return await store_planning.claim_planning(self.db, worker, now, lease_until)

    async def insert_subjobs(
        self,
        operation: OperationRecord,
        rows: Sequence[NewSubJob],
        worker: str,
        now: datetime,
        lease_until: datetime,
        progress: PlanProgress | None = None,
    ) -> int:
        return await store_planning.insert_subjobs(
            self.db, operation, rows, worker, now, lease_until, progress
        )

    def planned_rows(self, operation_id: str) -> AsyncIterator[list[NewSubJob]]:
        return store_streaming.planned_rows(self.db, operation_id)

    async def every_replica_streams(self, now: datetime) -> bool:
        return await store_streaming.every_replica_streams(self.db, now)

    async def finish_planning(
        self,
        operation_id: str,
        summary: PlanSummary,
        worker: str,
        now: datetime,
        approval: str | None = None,
    ) -> bool:
        return await store_planning.finish_planning(
            self.db, operation_id, summary, worker, now, approval
        )

    async def refuse_planning(
        self,
        operation_id: str,
        reason: str,
        summary: PlanSummary | None,
        worker: str,
        now: datetime,
    ) -> bool:
        return await store_planning.refuse_planning(
            self.db, operation_id, reason, summary, worker, now
        )

    async def postpone_planning(
        self, operation_id: str, error: str, not_before: datetime, worker: str, now: datetime
    ) -> bool:
        return await store_planning.postpone_planning(
            self.db, operation_id, error, not_before, worker, now
        )

    # --- dispatch, polling, reaping -----------------------------------------------------------

    async def active_operations(self) -> list[ActiveOperation]:
        return await store_claims.active_operations(self.db)

    async def claim_batches(
        self, request: ClaimRequest, max_batch: Sequence[int], max_groups: int = 1
    ) -> list[Batch]:
        return await store_claims.claim_batches(self.db, request, max_batch, max_groups)

    async def claim_polls(
        self,
        worker: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        due_by: datetime | None = None,
    ) -> list[SubJobRecord]:
        return await store_claims.claim_polls(self.db, worker, now, lease_until, limit, due_by)

    async def apply(
        self,
        changes: Sequence[Change],
        worker: str,
        now: datetime,
        call: CallResult | None = None,
    ) -> Applied:
        return await store_claims.apply(self.db, changes, worker, now, call)

    async def apply_many(
        self,
        items: Sequence[tuple[Sequence[Change], CallResult | None]],
        worker: str,
        now: datetime,
    ) -> list[Applied]:
        return await store_claims.apply_many(self.db, items, worker, now)

    async def reap(self, now: datetime, reaper: str = "reaper") -> int:
        return await store_leases.reap(self.db, now, reaper, locked_workers=self.locked_workers)

    async def recover(self, worker: str, now: datetime) -> int:
        return await store_leases.recover(self.db, worker, now)

    async def renew_leases(
        self, worker: str, now: datetime, until: datetime, subjob_ids: Sequence[int] = ()
    ) -> int:
        return await store_leases.renew_leases(self.db, worker, now, until, subjob_ids)

    async def register_worker(
        self, worker: str, hostname: str, pid: int, now: datetime, until: datetime
    ) -> None:
        await store_leases.register_worker(self.db, worker, hostname, pid, now, until)

    async def set_draining(self, worker: str) -> None:
        await store_leases.set_draining(self.db, worker)

    async def try_lease(self, name: str, owner: str, now: datetime, until: datetime) -> bool:
        return await store_leases.try_lease(self.db, name, owner, now, until)

    async def release_lease(self, name: str, owner: str) -> None:
        await store_leases.release_lease(self.db, name, owner)

    # --- totals (for /metrics) ----------------------------------------------------------------

    async def operation_state_totals(self) -> dict[OperationState, int]:
        return await totals.operation_states(self.db)

    async def subjob_state_totals(self) -> dict[State, int]:
        return await totals.subjob_states(self.db)

    async def cloud_call_totals(self) -> list[CallTotal]:
        return await totals.cloud_calls(self.db)
