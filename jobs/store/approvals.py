"""Approval decisions (part of the store): approve, reject, and expire what nobody decided on.

Each runs in one transaction with the operation's row locked, records the decision with who and
when, writes the operation event and settles the operation: a rejection or an expiry cancels
every sub-job (none was ever dispatched) and finishes it; an approval lets dispatch see it.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobs.approval import Decision
from jobs.errors import Conflict, NotAllowed
from jobs.records import OperationRecord
from jobs.store.base import (
    insert_events,
    operation_event,
    operation_row,
    pending_approval,
    to_operation,
    update_operation,
)
from jobs.store.db import Database
from jobs.store.models import OPERATIONS
from jobs.store.settle import settle

_EVENT = {
    Decision.APPROVED: "approved",
    Decision.REJECTED: "rejected",
    Decision.EXPIRED: "approval_expired",
}


def _check_pending(op: OperationRecord, verb: str) -> None:
    approval = op.approval
    if approval is None:
        if op.planned_at is None and op.refused_reason is None and not op.dry_run:
            raise Conflict(f"cannot {verb}: the operation is still being planned")
        raise Conflict(f"cannot {verb}: the operation does not wait for an approval")
    if approval.decision is not None:
        by = f" by {approval.decided_by}" if approval.decided_by else ""
        raise Conflict(f"cannot {verb}: the operation was already {approval.decision.value}{by}")
    if op.finished_at is not None or op.cancel_requested:
        raise Conflict(f"cannot {verb}: the operation was cancelled")


async def _record(
    conn: AsyncConnection,
    operation_id: str,
    decision: Decision,
    by: str | None,
    note: str | None,
    now: datetime,
) -> None:
    await update_operation(
        conn,
        operation_id,
        approval_decision=decision.value,
        approval_by=by,
        approval_at=now,
        approval_note=note,
        updated_at=now,
    )
    event = operation_event(operation_id, _EVENT[decision], now, worker=by, message=note)
    await insert_events(conn, [event])
    await settle(conn, [operation_id], now, by)


async def decide(
    db: Database,
    operation_id: str,
    decision: Decision,
    by: str,
    note: str | None,
    now: datetime,
) -> OperationRecord:
    """Approve or reject a pending operation. The caller that created it may do neither
    (`NotAllowed`); a decided, cancelled or expired one is a `Conflict`. Past its window an
    operation expires here rather than being approved late."""
    verb = "approve" if decision is Decision.APPROVED else "reject"
    async with db.write() as conn:
        await db.lock_operations(conn, [operation_id])
        op = to_operation(await operation_row(conn, operation_id))
        _check_pending(op, verb)
        assert op.approval is not None
        if by == op.created_by:
            raise NotAllowed(
                f"cannot {verb}: {by!r} created this operation; another token (operator or "
                "admin) must decide on it"
                + ("" if decision is Decision.APPROVED else " (to withdraw it, cancel it)")
            )
        expired = op.approval.expires_at <= now
        if expired:
            await _record(conn, operation_id, Decision.EXPIRED, None, None, now)
        else:
            await _record(conn, operation_id, decision, by, note, now)
        record = to_operation(await operation_row(conn, operation_id))
    if expired:
        until = op.approval.expires_at.isoformat()
        raise Conflict(
            f"cannot {verb}: the approval window ended at {until}; the operation expired"
        )
    return record


async def expire(db: Database, now: datetime) -> int:
    """Expire every pending approval whose window has passed; returns how many."""
    c = OPERATIONS.c
    due = sa.select(c.id).where(
        pending_approval(),
        c.finished_at.is_(None),
        c.cancel_requested.is_(False),
        c.approval_expires_at <= now,
    )
    async with db.read() as conn:
        ids = [str(r[0]) for r in (await conn.execute(due.order_by(c.id))).all()]
    count = 0
    for op_id in ids:
        async with db.write() as conn:
            await db.lock_operations(conn, [op_id])
            op = to_operation(await operation_row(conn, op_id))
            approval = op.approval
            if approval is None or approval.decision is not None or op.finished_at is not None:
                continue  # decided meanwhile
            if op.cancel_requested or approval.expires_at > now:
                continue
            await _record(conn, op_id, Decision.EXPIRED, None, None, now)
            count += 1
    return count
