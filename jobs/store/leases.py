"""Leases (part of the store): reaping and recovery of sub-jobs whose holder vanished, lease
renewal by heartbeat, the workers table, and named leases with failover (a rate key's
dispatching or the scheduler's leadership, for several replicas).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from jobs.states import IN_FLIGHT, Event, State
from jobs.store.base import CHUNK, MOVED_COLUMNS, insert_events, moved, transition_events
from jobs.store.budgets import end_worker
from jobs.store.db import Database
from jobs.store.liveness import dead_workers
from jobs.store.models import LEASES, OPERATIONS, SUBJOBS, WORKERS
from jobs.store.settle import settle

_S = SUBJOBS.c
log = structlog.get_logger("jobs.leases")

# What this engine understands, written on its `workers` row by its registration and heartbeats
# (a row of an older release has NULL): 1, an operation open to dispatch while its listing goes
# on (D101), which an older replica would finish as soon as its rows so far are done.
RELEASE = 1


async def _lease_lost(
    db: Database, conn: AsyncConnection, owned: sa.ColumnElement[bool], now: datetime, who: str
) -> int:
    """DISPATCHING rows matching `owned` go back to PENDING with verify_first (their call may or
    may not have reached the cloud); AWAITING rows matching it just lose their poll lease."""
    dispatching = sa.and_(_S.state == State.DISPATCHING.value, owned)
    op_ids = sorted(
        {
            r[0]
            for r in (
                await conn.execute(sa.select(_S.operation_id).where(dispatching).distinct())
            ).all()
        }
    )
    await db.lock_operations(conn, op_ids)
    stmt = (
        sa.update(SUBJOBS)
        .where(dispatching)
        .values(
            state=State.PENDING.value,
            verify_first=True,
            lease_owner=None,
            lease_expires_at=None,
            not_before=now,
            updated_at=now,
        )
        .returning(*MOVED_COLUMNS)
    )
    rows = moved((await conn.execute(stmt)).all())
    await insert_events(
        conn, transition_events(rows, Event.LEASE_LOST, State.DISPATCHING, State.PENDING, now, who)
    )
    await conn.execute(
        sa.update(SUBJOBS)
        .where(_S.state == State.AWAITING.value, owned)
        .values(lease_owner=None, lease_expires_at=None)
    )
    await settle(conn, {r.operation_id for r in rows}, now, who)
    return len(rows)


async def reap(db: Database, now: datetime, reaper: str, *, locked_workers: bool = False) -> int:
    """Sub-jobs whose lease expired go back (DISPATCHING ones with verify_first). With
    `locked_workers` (PostgreSQL, every engine holds its name's advisory lock), so does all that
    a dead worker held, at once: its sub-jobs, planning leases and shared-budget rows in flight,
    and its `workers` row goes."""
    async with db.write() as conn:
        count = await _lease_lost(db, conn, _S.lease_expires_at < now, now, reaper)
        if not (locked_workers and db.is_postgres):
            return count
        dead = await dead_workers(conn, alive=[reaper])
        if not dead:
            return count
        count += await _lease_lost(db, conn, _S.lease_owner.in_(dead), now, reaper)
        await _release_plans(conn, dead)
        ended = await end_worker(conn, dead)
        await conn.execute(sa.delete(WORKERS).where(WORKERS.c.id.in_(dead)))
        moved = log.warning if count or ended else log.info  # another replica may have been first
        moved("dead_workers_taken_over", workers=dead, subjobs=count, budget_rows=ended)
        return count


async def _release_plans(conn: AsyncConnection, workers: Sequence[str]) -> None:
    await conn.execute(
        sa.update(OPERATIONS)
        .where(OPERATIONS.c.plan_owner.in_(list(workers)))
        .values(plan_owner=None, plan_lease_expires_at=None)
    )


async def recover(db: Database, worker: str, now: datetime) -> int:
    """On start: whatever this worker held in a previous life is released at once. Not its
    budget rows in flight: the ledger ended the previous life's when it opened, and those in
    flight now are this life's own calls (the drivers' discovery), which must keep counting
    until their answers (`SqlLedger.open`)."""
    async with db.write() as conn:
        count = await _lease_lost(db, conn, _S.lease_owner == worker, now, worker)
        await _release_plans(conn, [worker])
        return count


async def renew_leases(
    db: Database, worker: str, now: datetime, until: datetime, subjob_ids: Sequence[int]
) -> int:
    """Heartbeat: extend the leases of the sub-jobs this process really has in hand (a row whose
    answer could not be recorded is NOT renewed, so the reaper eventually takes it back), the
    planning leases it holds, and its worker row."""
    renewed = 0
    async with db.write() as conn:
        ids = list(subjob_ids)
        for start in range(0, len(ids), CHUNK):
            result = await conn.execute(
                sa.update(SUBJOBS)
                .where(
                    _S.id.in_(ids[start : start + CHUNK]),
                    _S.lease_owner == worker,
                    _S.state.in_([s.value for s in IN_FLIGHT]),
                )
                .values(lease_expires_at=until)
            )
            renewed += int(result.rowcount)
        await conn.execute(
            sa.update(OPERATIONS)
            .where(OPERATIONS.c.plan_owner == worker)
            .values(plan_lease_expires_at=until)
        )
        await conn.execute(
            sa.update(WORKERS)
            .where(WORKERS.c.id == worker)
            .values(heartbeat_at=now, expires_at=until, release=RELEASE)
        )
    return renewed


async def register_worker(
    db: Database, worker: str, hostname: str, pid: int, now: datetime, until: datetime
) -> None:
    values = {
        "hostname": hostname,
        "pid": pid,
        "started_at": now,
        "heartbeat_at": now,
        "expires_at": until,
        "draining": False,
        "release": RELEASE,
    }
    async with db.write() as conn:
        result = await conn.execute(
            sa.update(WORKERS).where(WORKERS.c.id == worker).values(**values)
        )
        if result.rowcount == 0:
            await conn.execute(WORKERS.insert().values(id=worker, **values))


async def set_draining(db: Database, worker: str) -> None:
    async with db.write() as conn:
        await conn.execute(sa.update(WORKERS).where(WORKERS.c.id == worker).values(draining=True))


async def try_lease(db: Database, name: str, owner: str, now: datetime, until: datetime) -> bool:
    """Take or extend a named lease; True when `owner` holds it until `until`."""
    try:
        async with db.write() as conn:
            stmt = (
                sa.update(LEASES)
                .where(
                    LEASES.c.name == name,
                    sa.or_(LEASES.c.owner == owner, LEASES.c.expires_at < now),
                )
                .values(owner=owner, expires_at=until)
                .returning(LEASES.c.name)
            )
            if (await conn.execute(stmt)).first() is not None:
                return True
            exists = await conn.execute(sa.select(LEASES.c.name).where(LEASES.c.name == name))
            if exists.first() is not None:
                return False
            await conn.execute(
                LEASES.insert().values(name=name, owner=owner, acquired_at=now, expires_at=until)
            )
            return True
    except IntegrityError:
        return False


async def release_lease(db: Database, name: str, owner: str) -> None:
    async with db.write() as conn:
        await conn.execute(sa.delete(LEASES).where(LEASES.c.name == name, LEASES.c.owner == owner))
