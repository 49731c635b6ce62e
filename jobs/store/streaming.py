"""An operation open to dispatch while it is planned (D101; part of the store).

Planning may open an operation nothing can refuse or hold (no guard, no approval rule, not a dry
run, no waves) to dispatch from its first rows on (`insert_subjobs` with `progress`): it is
planned (`planned_at`) while its planning lease is held and its summary is not written yet. Its
rows may have been sent, so they are never deleted: a planning that fails or dies is taken up
again from them (`planned_rows`: the next attempt drops the targets they hold and numbers after
them), and a planning that must end without finishing (a refusal of a later item, its retries
spent) stops the operation instead (`halt_open_planning`): what was not begun is cancelled, what
was begun finishes. The operation cannot finish while its planning is open (`settle`).

It is told `operation.planned` when it opens (`opened_event`), and its rate keys only grow
(`merged_rate_keys`). A cancel that nobody plans it for ends its listing with what was planned
(`end_cancelled_listing`). It is opened only when every live replica understands it
(`every_replica_streams`, a rolling upgrade).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobs.ports import NewSubJob, PlanProgress
from jobs.records import PlanSummary
from jobs.store.base import insert_events, operation_event
from jobs.store.db import Database
from jobs.store.leases import RELEASE
from jobs.store.models import OPERATIONS, SUBJOBS, WORKERS
from jobs.store.settle import settle


def listing_open() -> sa.ColumnElement[bool]:
    """An operation open to dispatch while it lists: planned, with no summary yet and not
    finished (`OperationRecord.listing` in Python)."""
    c = OPERATIONS.c
    return sa.and_(c.planned_at.is_not(None), c.summary.is_(None), c.finished_at.is_(None))


def open_values(row: sa.RowMapping, progress: PlanProgress, now: datetime) -> dict[str, object]:
    """The operation's values while it is open to dispatch (`row`, locked): planned since its
    first opening, with the targets planned so far and their rate keys."""
    return {
        "planned_at": row["planned_at"] or now,
        "targets": progress.targets,
        "skipped": progress.skipped,
        "rate_keys": merged_rate_keys(progress.rate_keys, row["rate_keys"]),
    }


def opened_event(
    operation_id: str, progress: PlanProgress, worker: str, now: datetime
) -> dict[str, object]:
    """`operation.planned` of an operation opened to dispatch, in the transaction that opens
    it (before any of its rows can be sent or fail): its plan so far."""
    message = f"{progress.targets} targets, {progress.skipped} skipped so far; listing goes on"
    return operation_event(operation_id, "planned", now, worker=worker, message=message)


def merged_rate_keys(planned: Sequence[str], kept: object) -> list[str]:
    """The operation's rate keys: those planned, then those it already has that they lack (a
    later step's key, added while an operation open to dispatch was listed): a planning adds
    keys, it never drops one."""
    more = [str(k) for k in kept if str(k) not in planned] if isinstance(kept, list) else []
    return [*planned, *more]


async def every_replica_streams(db: Database, now: datetime) -> bool:
    """Whether an operation may be opened to dispatch while it is listed: every live replica
    understands it. A replica of an earlier release (its `workers` row without `release`, or
    with a lower one) finishes an operation as soon as the rows written so far are done, and
    the rest would be lost. A single process on SQLite is always this release."""
    if not db.is_postgres:
        return True
    w = WORKERS.c
    older = sa.select(w.id).where(
        w.expires_at >= now, sa.or_(w.release.is_(None), w.release < RELEASE)
    )
    async with db.read() as conn:
        return (await conn.execute(older.limit(1))).first() is None


PLANNED_PAGE = 5_000  # kept rows read at a time by a re-plan


async def planned_rows(
    db: Database, operation_id: str, page: int = PLANNED_PAGE
) -> AsyncIterator[list[NewSubJob]]:
    """The rows an earlier attempt wrote for an operation open to dispatch, in their order, a
    page at a time (a re-plan of a large operation holds one page of them, not all)."""
    s = SUBJOBS.c
    after: int | None = None
    while True:
        stmt = (
            sa.select(s.seq, s.target_id, s.rate_key, s.batch_key, s.payload, s.reason)
            .where(s.operation_id == operation_id)
            .order_by(s.seq)
            .limit(page)
        )
        if after is not None:
            stmt = stmt.where(s.seq > after)
        async with db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        if not rows:
            return
        yield [
            NewSubJob(
                seq=r.seq,
                target_id=r.target_id,
                rate_key=r.rate_key,
                batch_key=r.batch_key,
                payload=r.payload if isinstance(r.payload, dict) else {},
                skip_reason=r.reason if r.seq < 0 else None,  # skipped rows are numbered below 0
            )
            for r in rows
        ]
        after = rows[-1].seq


async def halt_open_planning(
    conn: AsyncConnection,
    row: sa.RowMapping,
    reason: str,
    summary: PlanSummary | None,
    worker: str,
    now: datetime,
) -> bool:
    """End the planning of an operation open to dispatch that cannot finish it: the operation
    is stopped with `reason`, its rows kept (caller holds the operation's lock)."""
    operation_id = str(row["id"])
    c = OPERATIONS.c
    # the summary keeps why the listing stopped: it never ended, so nothing may read it whole
    plan = replace(summary or _summary_so_far(row), refused_reason=reason)
    plan = replace(plan, targets=await _written(conn, operation_id))
    stmt = (
        sa.update(OPERATIONS)
        .where(c.id == operation_id, c.plan_owner == worker, c.finished_at.is_(None))
        .values(
            halted_reason=sa.func.coalesce(c.halted_reason, reason),
            summary=plan.to_json(),
            plan_owner=None,
            plan_lease_expires_at=None,
            plan_error=reason,
            targets=plan.targets,  # every row written, those never shown included (cancelled)
            updated_at=now,
        )
        .returning(c.id)
    )
    if (await conn.execute(stmt)).first() is None:
        return False
    # its own event: not `operation.halted`, which tells the error budget ran out
    message = f"listing stopped after dispatch began: {reason}"
    await insert_events(
        conn,
        [operation_event(operation_id, "listing_stopped", now, worker=worker, message=message)],
    )
    await settle(conn, [operation_id], now, worker)
    return True


async def end_cancelled_listing(conn: AsyncConnection, row: sa.RowMapping, now: datetime) -> None:
    """End the listing of a cancelled operation open to dispatch that nobody plans (its
    attempt postponed, or its planner dead): its summary is what was planned so far, so it is
    no longer waiting to be planned (and is not rewritten by every planning tick while its
    calls in flight finish); it finishes once they have (caller holds its lock, settles)."""
    written = await _written(conn, str(row["id"]))
    plan = replace(_summary_so_far(row), refused_reason=CANCELLED_WHILE_LISTED, targets=written)
    await conn.execute(
        sa.update(OPERATIONS)
        .where(OPERATIONS.c.id == row["id"], OPERATIONS.c.summary.is_(None))
        .values(
            summary=plan.to_json(),
            targets=written,
            plan_owner=None,
            plan_lease_expires_at=None,
            updated_at=now,
        )
    )


async def _written(conn: AsyncConnection, operation_id: str) -> int:
    """The rows an open operation's listing wrote to act on (skipped ones are numbered below
    0), those not shown to dispatch yet included: when its listing ends early they are
    cancelled, and the operation's targets are what its counts hold."""
    s = SUBJOBS.c
    stmt = sa.select(sa.func.count()).where(s.operation_id == operation_id, s.seq >= 0)
    return int((await conn.execute(stmt)).scalar_one())


CANCELLED_WHILE_LISTED = "cancelled before its listing ended"


def _summary_so_far(row: sa.RowMapping) -> PlanSummary:
    targets, skipped = row["targets"], row["skipped"]
    return PlanSummary(
        targets=targets if isinstance(targets, int) else 0,
        skipped=skipped if isinstance(skipped, int) else 0,
        skipped_by_reason={},
        rate_keys=(),
        waves=(),
        wave_count=1,
        eta_seconds=0.0,
        acting_by_scope={},
        fleet_by_scope={},
    )
