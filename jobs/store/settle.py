"""Settling an operation after its sub-jobs changed (part of the store: SQL, in-transaction).

Runs inside every write that changes sub-jobs of an operation, in the same transaction, with the
operation's row locked: it applies the error budget (stop, and cancel what is left), releases the
next wave when the previous one is terminal (or pauses before it, with pause_after_wave), cancels
what a cancel or a stop left pending, and stamps the operation finished when nothing is active.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobs.approval import Decision
from jobs.records import OperationRecord
from jobs.states import (
    ACTIVE,
    UNSUCCESSFUL,
    Event,
    OperationFlags,
    State,
    derive_operation_state,
)
from jobs.store import counts
from jobs.store.base import (
    MOVED_COLUMNS,
    insert_events,
    moved,
    operation_event,
    to_operation,
    transition_events,
)
from jobs.store.models import OPERATIONS, SUBJOBS
from jobs.strategy import allowed_failures, errors_exceeded, wave_count
from jobs.strategy import wave_end as strategy_wave_end

ACTIVE_VALUES = [s.value for s in ACTIVE]


async def cancel_pending(
    conn: AsyncConnection, operation_id: str, reason: str, now: datetime, worker: str | None
) -> int:
    """Cancel the operation's sub-jobs whose action has not begun: the rest of a recipe the
    cloud has accepted a call of (the rest of a resize, a revert) and a call that may have
    reached the cloud (`verify_first`) finish first (D20)."""
    s = SUBJOBS.c
    stmt = (
        sa.update(SUBJOBS)
        .where(
            s.operation_id == operation_id,
            s.state == State.PENDING.value,
            s.begun.is_(False),
            s.verify_first.is_(False),
        )
        .values(
            state=State.CANCELLED.value,
            reason=reason,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
        .returning(*MOVED_COLUMNS)
    )
    rows = moved((await conn.execute(stmt)).all())
    await insert_events(
        conn,
        transition_events(
            rows, Event.CANCEL, State.PENDING, State.CANCELLED, now, worker, message=reason
        ),
    )
    return len(rows)


async def exists_active(
    conn: AsyncConnection, operation_id: str, seq_end: int | None = None
) -> bool:
    """Whether the operation has an active sub-job (before `seq_end`, when given)."""
    if seq_end is None:
        return await counts.total(conn, operation_id, ACTIVE) > 0
    stmt = sa.select(SUBJOBS.c.id).where(
        SUBJOBS.c.operation_id == operation_id,
        SUBJOBS.c.state.in_(ACTIVE_VALUES),
        SUBJOBS.c.seq < seq_end,
    )
    return (await conn.execute(stmt.limit(1))).first() is not None


async def count_unsuccessful(conn: AsyncConnection, operation_id: str) -> dict[State, int]:
    """The operation's FAILED and UNKNOWN sub-jobs, each state listed."""
    known = (await counts.read(conn, [operation_id]))[operation_id]
    return {state: known.get(state, 0) for state in UNSUCCESSFUL}


def budget_text(counts: dict[State, int]) -> str:
    """'3 failures' or '3 failures (1 unknown)': what the error budget counted."""
    unknown = counts.get(State.UNKNOWN, 0)
    text = f"{sum(counts.values())} failures"
    return f"{text} ({unknown} unknown)" if unknown else text


@dataclass(frozen=True)
class Settled:
    halted: tuple[str, ...] = ()
    finished: tuple[str, ...] = ()


async def settle(
    conn: AsyncConnection,
    operation_ids: Iterable[str],
    now: datetime,
    worker: str | None,
    *,
    resuming: bool = False,
) -> Settled:
    """Apply the operation-level consequences of sub-job changes (caller holds the op locks).

    `resuming`: a user resume, which releases the next wave of a pause_after_wave operation.
    """
    halted: list[str] = []
    finished: list[str] = []
    for op_id in sorted(set(operation_ids)):
        row = (await conn.execute(sa.select(OPERATIONS).where(OPERATIONS.c.id == op_id))).first()
        if row is None or row._mapping["planned_at"] is None or row._mapping["dry_run"]:
            continue
        op = to_operation(row._mapping)
        events: list[dict[str, object]] = []
        if await _apply_error_budget(conn, op, now, worker, events):
            halted.append(op_id)
        refused = _approval_refused(op)
        stopped = op.cancel_requested or op.halted_reason is not None or op_id in halted
        if stopped or refused:
            await cancel_pending(conn, op_id, refused or _stop_reason(op), now, worker)
        else:
            await _release_waves(conn, op, now, worker, events, resuming)
        if (
            op.finished_at is None
            and planning_ended(row._mapping)
            and not await exists_active(conn, op_id)
        ):
            unsuccessful = await count_unsuccessful(conn, op_id)
            flags = OperationFlags(
                True,
                False,
                False,
                False,
                op.cancel_requested,
                op.halted_reason is not None or op_id in halted,
                op.approval_flag,
            )
            state = derive_operation_state(unsuccessful, flags)
            await conn.execute(
                sa.update(OPERATIONS)
                .where(OPERATIONS.c.id == op_id)
                .values(finished_at=now, updated_at=now)
            )
            events.append(
                operation_event(op_id, "finished", now, worker=worker, message=state.value)
            )
            finished.append(op_id)
        await insert_events(conn, events)
    return Settled(tuple(halted), tuple(finished))


def planning_ended(row: sa.RowMapping) -> bool:
    """Whether a planned operation's planning has ended, so it may finish: its summary is
    written, or it was cancelled and nobody plans it any more. An operation open to dispatch
    while it is planned (D101) has neither until its listing ends."""
    return row["summary"] is not None or (
        bool(row["cancel_requested"]) and row["plan_owner"] is None
    )


def _stop_reason(op: OperationRecord) -> str:
    """Why a stopped operation's pending sub-jobs are cancelled: a cancel, a listing that
    stopped after dispatch began (D101: its summary keeps why), or the error budget."""
    if op.cancel_requested:
        return "cancelled"
    listing = op.summary.refused_reason if op.summary is not None else None
    if listing:
        return f"stopped: the listing stopped early: {listing}"
    return "stopped: the error budget ran out"


def _approval_refused(op: OperationRecord) -> str | None:
    """Why nothing of the operation may be sent: its approval was rejected or expired."""
    approval = op.approval
    if approval is None or approval.decision in (None, Decision.APPROVED):
        return None
    if approval.decision is Decision.EXPIRED:
        return "approval expired: nobody approved it in time"
    return f"approval rejected by {approval.decided_by}"


async def _apply_error_budget(
    conn: AsyncConnection,
    op: OperationRecord,
    now: datetime,
    worker: str | None,
    events: list[dict[str, object]],
) -> bool:
    if op.halted_reason is not None or op.cancel_requested or op.strategy.max_errors is None:
        return False
    unsuccessful = await count_unsuccessful(conn, op.id)  # unknown ones count: no evidence
    if not errors_exceeded(sum(unsuccessful.values()), op.targets, op.strategy.max_errors):
        return False
    allowed = allowed_failures(op.targets, op.strategy.max_errors)
    reason = (
        f"max_errors {op.strategy.max_errors} exceeded: {budget_text(unsuccessful)}, "
        f"{allowed} allowed of {op.targets} targets"
    )
    await conn.execute(
        sa.update(OPERATIONS)
        .where(OPERATIONS.c.id == op.id)
        .values(halted_reason=reason, updated_at=now)
    )
    events.append(operation_event(op.id, "halted", now, worker=worker, message=reason))
    return True


async def _release_waves(
    conn: AsyncConnection,
    op: OperationRecord,
    now: datetime,
    worker: str | None,
    events: list[dict[str, object]],
    resuming: bool,
) -> None:
    waves = op.strategy.waves
    total = wave_count(op.targets, waves)
    wave, paused = op.current_wave, op.paused
    while wave + 1 < total and not paused:
        if await exists_active(conn, op.id, strategy_wave_end(op.targets, waves, wave)):
            break
        if op.strategy.pause_after_wave and not resuming:
            paused = True
            events.append(
                operation_event(
                    op.id,
                    "paused",
                    now,
                    worker=worker,
                    message=f"pause_after_wave: wave {wave + 1} is done",
                )
            )
            break
        wave, resuming = wave + 1, False  # a resume releases one wave
        size = strategy_wave_end(op.targets, waves, wave) - strategy_wave_end(
            op.targets, waves, wave - 1
        )
        events.append(
            operation_event(
                op.id,
                "wave_started",
                now,
                worker=worker,
                message=f"wave {wave + 1} of {total}: {size} targets",
            )
        )
    if (wave, paused) != (op.current_wave, op.paused):
        await conn.execute(
            sa.update(OPERATIONS)
            .where(OPERATIONS.c.id == op.id)
            .values(current_wave=wave, paused=paused, updated_at=now)
        )
