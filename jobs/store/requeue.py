"""retry-failed: failed sub-jobs (and, when asked, unknown ones) go back to PENDING. Part of the
store (see `jobs.store`, the facade the rest of the engine uses).

An `unknown` sub-job's call may have acted and the cloud keeps no record either way, so it is
taken only when the caller asks (`include_unknown`), and then it is sent again: reading the cloud
first would only find no record again, and the caller has accepted that the action may happen
twice.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobs.decide import AWAIT_TIMEOUT
from jobs.errors import Conflict
from jobs.outcomes import ROLLED_BACK
from jobs.records import OperationRecord
from jobs.states import Event, State
from jobs.store.base import (
    CHUNK,
    MOVED_COLUMNS,
    Moved,
    insert_events,
    moved,
    operation_event,
    operation_row,
    to_operation,
    transition_events,
    update_operation,
)
from jobs.store.db import Database
from jobs.store.models import CLOUD_CALLS, EVENTS, SUBJOBS
from jobs.store.settle import count_unsuccessful, settle
from jobs.strategy import errors_exceeded


async def _restart_rolled_back(conn: AsyncConnection, operation_id: str) -> None:
    """Move the FAILED sub-jobs whose action was rolled back (`jobs.outcomes.ROLLED_BACK`) to
    their first step, with the rate and batch keys that step was claimed with (its CLAIM event
    names the call, whose row has them)."""
    s = SUBJOBS.c
    failed = sa.select(s.id, s.memo).where(
        s.operation_id == operation_id, s.state == State.FAILED.value, s.step > 0
    )
    ids = [
        int(r.id)
        for r in (await conn.execute(failed)).all()
        if isinstance(r.memo, dict) and r.memo.get(ROLLED_BACK)
    ]
    keys: dict[tuple[str, str], set[int]] = {}
    for start in range(0, len(ids), CHUNK):
        first_claims = (
            sa.select(EVENTS.c.subjob_id, CLOUD_CALLS.c.rate_key, CLOUD_CALLS.c.batch_key)
            .join(CLOUD_CALLS, CLOUD_CALLS.c.id == EVENTS.c.call_id)
            .where(
                EVENTS.c.operation_id == operation_id,
                EVENTS.c.subjob_id.in_(ids[start : start + CHUNK]),
                EVENTS.c.event == Event.CLAIM.value,
                CLOUD_CALLS.c.step == 0,
            )
        )
        seen: set[int] = set()
        for sub_id, rate, batch in (await conn.execute(first_claims)).all():
            if int(sub_id) not in seen:
                seen.add(int(sub_id))
                keys.setdefault((str(rate), str(batch)), set()).add(int(sub_id))
    for (rate, batch), members in keys.items():
        await conn.execute(
            sa.update(SUBJOBS)
            .where(s.id.in_(sorted(members)), s.state == State.FAILED.value)
            .values(
                step=0, rate_key=rate, batch_key=batch, memo=None, verify_first=False, begun=False
            )
        )


async def _check_retryable(conn: AsyncConnection, op: OperationRecord, include: bool) -> None:
    if op.refused_reason is not None or op.dry_run or op.planned_at is None:
        raise Conflict("cannot retry: the operation has no sub-jobs to retry")
    if op.cancel_requested:
        raise Conflict("cannot retry: the operation was cancelled")
    stopped = None if op.summary is None else op.summary.refused_reason
    if stopped is not None:  # its listing stopped early after dispatch began (D101)
        raise Conflict(
            f"cannot retry: its listing stopped before every server was listed ({stopped}), "
            "so it cannot succeed; create the operation again for the servers it did not list"
        )
    if include or op.strategy.max_errors is None:
        return
    unknown = (await count_unsuccessful(conn, op.id))[State.UNKNOWN]
    if errors_exceeded(unknown, op.targets, op.strategy.max_errors):
        # they count against the error budget, which would stop the operation again at once
        raise Conflict(
            f"cannot retry: its {unknown} unknown sub-jobs alone exceed max_errors "
            f"{op.strategy.max_errors}; retry with include_unknown to take them too"
        )


async def _requeue(
    conn: AsyncConnection, operation_id: str, state: State, by: str, now: datetime
) -> list[Moved]:
    """Move the operation's sub-jobs in `state` to PENDING, with their REQUEUE events. A failed
    one whose call may have acted (it timed out awaiting the cloud, or its last send was
    ambiguous) is read back from the cloud before anything is sent again; an unknown one (asked
    for by name) is sent again, since the cloud keeps no record to read."""
    s = SUBJOBS.c
    verify: sa.ColumnElement[bool] | bool = (
        False
        if state is State.UNKNOWN
        else sa.or_(s.verify_first.is_(True), s.error_code == AWAIT_TIMEOUT)
    )
    stmt = (
        sa.update(SUBJOBS)
        .where(s.operation_id == operation_id, s.state == state.value)
        .values(
            state=State.PENDING.value,
            attempt=0,
            throttles=0,
            throttled_since=None,
            not_before=now,
            verify_first=verify,
            error_code=None,
            error_message=None,
            cloud_job_id=None,
            accepted_at=None,
            updated_at=now,
        )
        .returning(*MOVED_COLUMNS)
    )
    rows = moved((await conn.execute(stmt)).all())
    await insert_events(conn, transition_events(rows, Event.REQUEUE, state, State.PENDING, now, by))
    return rows


async def retry_failed(
    db: Database, operation_id: str, by: str, now: datetime, *, include_unknown: bool = False
) -> int:
    """Give every FAILED sub-job another try, and every UNKNOWN one when `include_unknown`;
    lifts an error-budget stop. One whose action was rolled back starts over from its first
    step. Without `include_unknown`, unknown sub-jobs stay as they are; a Conflict when they
    alone exceed the error budget (which would stop the operation again at once)."""
    async with db.write() as conn:
        await db.lock_operations(conn, [operation_id])
        op = to_operation(await operation_row(conn, operation_id))
        await _check_retryable(conn, op, include_unknown)
        await _restart_rolled_back(conn, operation_id)
        failed = await _requeue(conn, operation_id, State.FAILED, by, now)
        unknown = (
            await _requeue(conn, operation_id, State.UNKNOWN, by, now) if include_unknown else []
        )
        if not failed and not unknown:
            return 0
        message = f"{len(failed)} failed sub-jobs requeued"
        if include_unknown:
            message = f"{len(failed)} failed and {len(unknown)} unknown sub-jobs requeued"
        await insert_events(
            conn,
            [operation_event(operation_id, "retry_requested", now, worker=by, message=message)],
        )
        await update_operation(
            conn, operation_id, halted_reason=None, finished_at=None, updated_at=now
        )
        await settle(conn, [operation_id], now, by)
        return len(failed) + len(unknown)
