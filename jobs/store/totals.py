"""Totals over the whole database, for `/metrics`: what every replica shares.

Three GROUP BY queries over the engine's tables, read-only: operations by their derived state,
sub-jobs by state (summed from the kept per-state counts, dry runs left out), and cloud calls by
rate key, purpose and outcome.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from jobs.records import CallTotal
from jobs.states import (
    ACTIVE,
    UNSUCCESSFUL,
    OperationFlags,
    OperationState,
    State,
    derive_operation_state,
)
from jobs.store.db import Database
from jobs.store.models import CLOUD_CALLS, COUNTS, OPERATIONS, SUBJOBS
from jobs.store.streaming import listing_open


async def operation_states(db: Database) -> dict[OperationState, int]:
    """Operations by derived state, from flags and two EXISTS per operation (a failed or unknown
    sub-job makes a finished operation `completed_with_failures`)."""
    o, s = OPERATIONS.c, SUBJOBS.c

    def has(states: Iterable[State]) -> sa.ColumnElement[bool]:
        values = [st.value for st in states]
        return sa.exists().where(s.operation_id == o.id, s.state.in_(values))

    flags = (
        o.planned_at.is_not(None).label("planned"),
        o.refused_reason.is_not(None).label("refused"),
        o.dry_run,
        o.paused,
        o.cancel_requested,
        o.halted_reason.is_not(None).label("halted"),
        sa.case(
            (o.approval_reason.is_(None), None),
            else_=sa.func.coalesce(o.approval_decision, "pending"),
        ).label("approval"),
        sa.or_(  # an operation dispatched while its listing goes on is active (D101)
            has(ACTIVE),
            listing_open(),
        ).label("active"),
        has(UNSUCCESSFUL).label("failed"),
    )
    stmt = sa.select(*flags, sa.func.count()).group_by(*flags)
    out = dict.fromkeys(OperationState, 0)
    async with db.read() as conn:
        for row in (await conn.execute(stmt)).all():
            planned, refused, dry_run, paused, cancel, halted, approval, active, failed, n = row
            state = derive_operation_state(
                {State.PENDING: int(bool(active)), State.FAILED: int(bool(failed))},
                OperationFlags(
                    planned=bool(planned),
                    refused=bool(refused),
                    dry_run=bool(dry_run),
                    paused=bool(paused),
                    cancel_requested=bool(cancel),
                    halted=bool(halted),
                    approval=approval,
                ),
            )
            out[state] += int(n)
    return out


async def subjob_states(db: Database) -> dict[State, int]:
    """Sub-jobs by state; a dry run's sub-jobs are a plan, not work, and are left out."""
    real = sa.select(OPERATIONS.c.id).where(OPERATIONS.c.dry_run.is_(False))
    stmt = (  # the kept per-state counts (`jobs.store.counts`), not a scan of every sub-job
        sa.select(COUNTS.c.state, sa.func.sum(COUNTS.c.n))
        .where(COUNTS.c.operation_id.in_(real.scalar_subquery()))
        .group_by(COUNTS.c.state)
    )
    out = dict.fromkeys(State, 0)
    async with db.read() as conn:
        for state, count in (await conn.execute(stmt)).all():
            out[State(state)] = int(count or 0)
    return out


async def cloud_calls(db: Database) -> list[CallTotal]:
    """Recorded cloud calls by rate key, purpose and outcome (None: no answer recorded yet)."""
    c = CLOUD_CALLS.c
    stmt = sa.select(c.rate_key, c.purpose, c.outcome, sa.func.count()).group_by(
        c.rate_key, c.purpose, c.outcome
    )
    async with db.read() as conn:
        rows = (await conn.execute(stmt)).all()
    return [
        CallTotal(
            rate_key=str(key),
            purpose=str(purpose),
            outcome=None if outcome is None else str(outcome),
            count=int(count),
        )
        for key, purpose, outcome, count in rows
    ]
