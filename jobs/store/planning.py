"""Planning writes (part of the store): claim an unplanned operation, stream its rows in, then
stamp it planned, refuse it (atomically: its rows go in the same transaction) or postpone it.

Rows written while planning are invisible to dispatch (the operation is not planned yet) and are
deleted by the next attempt if this one dies half-way, unless the planning opened the operation to
dispatch while it lists (`insert_subjobs` with `progress`, D101): its rows are then kept, and the
next attempt goes on from them (`jobs.store.streaming`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobs.approval import ApprovalRules
from jobs.errors import Conflict
from jobs.ports import NewSubJob, PlanProgress
from jobs.records import OperationRecord, PlanSummary
from jobs.states import State
from jobs.store import counts
from jobs.store.base import (
    insert_events,
    insert_rows,
    operation_event,
    operation_row,
    to_operation,
    update_operation,
)
from jobs.store.db import Database
from jobs.store.models import OPERATIONS, SUBJOBS
from jobs.store.notify import DISPATCH, notify
from jobs.store.settle import settle
from jobs.store.streaming import (
    end_cancelled_listing,
    halt_open_planning,
    listing_open,
    merged_rate_keys,
    open_values,
    opened_event,
)


async def claim_planning(
    db: Database, worker: str, now: datetime, lease_until: datetime
) -> OperationRecord | None:
    """Take the oldest unplanned operation; drop rows a crashed planning attempt left behind."""
    c = OPERATIONS.c
    stmt = (
        sa.select(OPERATIONS)
        .where(
            planning_open(),
            c.refused_reason.is_(None),
            c.cancel_requested.is_(False),
            sa.or_(c.plan_not_before.is_(None), c.plan_not_before <= now),
            sa.or_(c.plan_owner.is_(None), c.plan_lease_expires_at < now),
        )
        .order_by(c.created_at, c.id)
        .limit(1)
    )
    waiting = sa.select(c.id).where(
        planning_open(),
        c.refused_reason.is_(None),
        sa.or_(c.plan_owner.is_(None), c.plan_lease_expires_at < now),
    )
    async with db.read() as conn:
        if (await conn.execute(waiting.limit(1))).first() is None:
            return None  # the common case: nothing to plan, and no write lock taken for it
    async with db.write() as conn:
        await _close_cancelled_planning(conn, now)
        row = (await conn.execute(db.skip_locked(stmt))).first()
        if row is None:
            return None
        op_id = row._mapping["id"]
        await update_operation(
            conn,
            op_id,
            plan_owner=worker,
            plan_lease_expires_at=lease_until,
            plan_attempts=c.plan_attempts + 1,
            updated_at=now,
        )
        if row._mapping["planned_at"] is None:  # else its rows may have been sent: kept (D101)
            await counts.delete_subjobs(conn, op_id)
        return to_operation(await operation_row(conn, op_id))


def planning_open() -> sa.ColumnElement[bool]:
    """An operation whose planning has not ended: not planned yet, or open to dispatch while
    it lists (planned, with no summary yet and not finished, D101)."""
    return sa.or_(OPERATIONS.c.planned_at.is_(None), listing_open())


async def _close_cancelled_planning(conn: AsyncConnection, now: datetime) -> None:
    """Operations cancelled before (or while a crashed process was) planning them: finish them
    with no sub-jobs instead of planning work nobody wants."""
    c = OPERATIONS.c
    stmt = sa.select(OPERATIONS).where(
        planning_open(),
        c.refused_reason.is_(None),
        c.cancel_requested.is_(True),
        sa.or_(c.plan_owner.is_(None), c.plan_lease_expires_at < now),
    )
    rows = [r._mapping for r in (await conn.execute(stmt)).all()]
    for row in rows:
        if row["planned_at"] is not None:  # open to dispatch: its rows are kept (D101)
            await end_cancelled_listing(conn, row, now)
            continue
        await counts.delete_subjobs(conn, row["id"])
        await update_operation(conn, row["id"], planned_at=now, plan_owner=None, updated_at=now)
    await settle(conn, [str(r["id"]) for r in rows], now, None)


async def _own_planning(
    conn: AsyncConnection, operation_id: str, worker: str, **values: object
) -> bool:
    stmt = (
        sa.update(OPERATIONS)
        .where(
            OPERATIONS.c.id == operation_id,
            OPERATIONS.c.plan_owner == worker,
            OPERATIONS.c.finished_at.is_(None),
        )
        .values(**values)
        .returning(OPERATIONS.c.id)
    )
    return (await conn.execute(stmt)).first() is not None


async def insert_subjobs(
    db: Database,
    operation: OperationRecord,
    rows: Sequence[NewSubJob],
    worker: str,
    now: datetime,
    lease_until: datetime,
    progress: PlanProgress | None = None,
) -> int:
    """Bulk-insert planned rows (Core executemany) while still holding the planning lease.
    With `progress`, the operation is open to dispatch from this transaction on, with the
    targets and rate keys planned so far (D101); the insert that opens it tells it planned."""
    if not rows:
        return 0
    values = planned_values(operation.id, operation.kind, rows, now)
    opened: dict[str, object] = {}
    async with db.write() as conn:
        if progress is not None:
            await db.lock_operations(conn, [operation.id])
            row = await operation_row(conn, operation.id)
            opened = open_values(row, progress, now)
        if not await _own_planning(
            conn, operation.id, worker, plan_lease_expires_at=lease_until, **opened
        ):
            raise Conflict(f"lost the planning lease of operation {operation.id}")
        if progress is not None and row["planned_at"] is None:  # told before any row is sent
            await insert_events(conn, [opened_event(operation.id, progress, worker, now)])
        elif progress is not None:  # more rows to send: the replica that sends them may be another
            await notify(conn, [DISPATCH])
        if db.is_postgres:
            await _copy_rows(conn, values)
        else:
            await insert_rows(conn, SUBJOBS, values)
        await counts.add_inserted(conn, operation.id, (str(v["state"]) for v in values))
    return len(values)


def planned_values(
    operation_id: str, kind: str, rows: Sequence[NewSubJob], now: datetime
) -> list[dict[str, object]]:
    """The `subjobs` column values of planned rows (PENDING, or SKIPPED with their reason)."""
    return [
        {
            "operation_id": operation_id,
            "seq": r.seq,
            "target_id": r.target_id,
            "kind": kind,
            "rate_key": r.rate_key,
            "batch_key": r.batch_key,
            "payload": dict(r.payload),
            "state": (State.PENDING if r.skip_reason is None else State.SKIPPED).value,
            "reason": r.skip_reason,
            "step": 0,
            "attempt": 0,
            "throttles": 0,
            "not_before": now,
            "verify_first": False,
            "created_at": now,
            "updated_at": now,
        }
        for r in rows
    ]


async def finish_planning(
    db: Database,
    operation_id: str,
    summary: PlanSummary,
    worker: str,
    now: datetime,
    approval: str | None = None,
) -> bool:
    """Stamp the operation planned. `approval`: why it must wait for an approval (a rule of
    `jobs.approval` holds); it then waits, within its window, and nothing of it is dispatched."""
    async with db.write() as conn:
        await db.lock_operations(conn, [operation_id])
        row = await operation_row(conn, operation_id)
        done = now if row["dry_run"] else None
        waits = approval is not None and not row["dry_run"]
        planned_at = row["planned_at"] or now  # open to dispatch since then (D101)
        owned = await _own_planning(
            conn,
            operation_id,
            worker,
            **(_approval_values(row, approval, now) if waits else {}),
            planned_at=planned_at,
            targets=summary.targets,
            skipped=summary.skipped,
            rate_keys=merged_rate_keys([k.rate_key for k in summary.rate_keys], row["rate_keys"]),
            summary=summary.to_json(),
            plan_owner=None,
            plan_lease_expires_at=None,
            plan_error=None,
            finished_at=done,
            updated_at=now,
        )
        if not owned:
            return False
        message = f"{summary.targets} targets, {summary.skipped} skipped"
        # an operation open to dispatch was told `planned` when it opened (D101)
        name = "planned" if row["planned_at"] is None else "listing_ended"
        events = [operation_event(operation_id, name, now, worker=worker, message=message)]
        if waits:
            events.append(
                operation_event(
                    operation_id, "approval_requested", now, worker=worker, message=approval
                )
            )
        await insert_events(conn, events)
        if not row["dry_run"]:
            await settle(conn, [operation_id], now, worker)
        return True


def _approval_values(row: sa.RowMapping, reason: str | None, now: datetime) -> dict[str, object]:
    raw = row["approval_rules"]
    rules = ApprovalRules.from_json(raw if isinstance(raw, dict) else {})
    until = now + timedelta(seconds=rules.window_seconds)
    return {"approval_reason": reason, "approval_expires_at": until}


async def refuse_planning(
    db: Database,
    operation_id: str,
    reason: str,
    summary: PlanSummary | None,
    worker: str,
    now: datetime,
) -> bool:
    """Refuse atomically: the partial rows go, the operation keeps only its reason. An
    operation open to dispatch (D101) is stopped instead, its rows kept: some may be sent."""
    async with db.write() as conn:
        await db.lock_operations(conn, [operation_id])
        row = await operation_row(conn, operation_id)
        if row["planned_at"] is not None:
            return await halt_open_planning(conn, row, reason, summary, worker, now)
        owned = await _own_planning(
            conn,
            operation_id,
            worker,
            refused_reason=reason,
            summary=None if summary is None else summary.to_json(),
            plan_owner=None,
            plan_lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        )
        if not owned:
            return False
        await counts.delete_subjobs(conn, operation_id)
        await insert_events(
            conn, [operation_event(operation_id, "refused", now, worker=worker, message=reason)]
        )
        return True


async def postpone_planning(
    db: Database, operation_id: str, error: str, not_before: datetime, worker: str, now: datetime
) -> bool:
    async with db.write() as conn:
        await db.lock_operations(conn, [operation_id])
        opened = (await operation_row(conn, operation_id))["planned_at"] is not None
        owned = await _own_planning(
            conn,
            operation_id,
            worker,
            plan_owner=None,
            plan_lease_expires_at=None,
            plan_not_before=not_before,
            plan_error=error,
            updated_at=now,
        )
        if owned:
            if not opened:  # an operation open to dispatch keeps its rows (D101)
                await counts.delete_subjobs(conn, operation_id)
            await insert_events(
                conn,
                [
                    operation_event(
                        operation_id, "planning_postponed", now, worker=worker, message=error
                    )
                ],
            )
            row = await operation_row(conn, operation_id)
            if opened and row["cancel_requested"]:
                # cancelled while it listed: nobody plans it now, so its listing ends here with
                # what was planned (else a call answered meanwhile would finish it unsummed)
                await end_cancelled_listing(conn, row, now)
                await settle(conn, [operation_id], now, worker)
        return owned


async def _copy_rows(conn: AsyncConnection, values: Sequence[Mapping[str, object]]) -> None:
    """PostgreSQL: the rows with one binary `COPY` in the transaction, instead of pages of
    multi-row `INSERT`s (bench/engine.py plan_100k, see docs/benchmarks.md)."""
    raw = await conn.get_raw_connection()
    columns = list(values[0])
    records = [
        tuple(json.dumps(v[c]) if c in _JSON_COLUMNS else v[c] for c in columns) for v in values
    ]
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        SUBJOBS.name, records=records, columns=columns
    )


_JSON_COLUMNS = frozenset({"payload"})
