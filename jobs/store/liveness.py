"""Which workers are dead, on PostgreSQL: those whose name's advisory lock nobody holds.

Every engine process started by `open_fleet` holds its worker name's session advisory lock for
its life (`jobs.store.identity`), and every process that writes budget rows holds the lock of
the name they carry while it may write them (an API process: a name of its own, D81); the
database server frees it the moment the process dies, even by `kill -9`. So a worker named in `workers`, or holding a shared-budget row in flight, whose lock
is not held is dead now, not "late with its heartbeat": its sub-jobs, planning leases and budget
rows are taken over at once (`jobs.store.leases.reap`) instead of after their lease.
A worker that lost its lock's connection (not its life) takes the lock again within 10 s; what was
taken over meanwhile is verified before anything is sent again, as after a lease expiry.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobs.store.identity import advisory_key
from jobs.store.models import RATE_GRANTS, WORKERS

_HELD = sa.text(
    "SELECT classid::bigint AS hi, objid::bigint AS lo FROM pg_locks "
    "WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def lock_parts(worker: str) -> tuple[int, int]:
    """How `pg_locks` shows a worker's bigint lock key: (classid, objid), each unsigned 32 bits."""
    key = advisory_key(worker) & 0xFFFFFFFFFFFFFFFF
    return key >> 32, key & 0xFFFFFFFF


async def held_locks(conn: AsyncConnection) -> set[tuple[int, int]]:
    return {(int(r.hi), int(r.lo)) for r in await conn.execute(_HELD)}


async def dead_workers(conn: AsyncConnection, alive: Iterable[str] = ()) -> list[str]:
    """Workers with a `workers` row or a budget row in flight whose name's lock nobody holds
    (`alive`: names known to be alive, this process's own, never reported)."""
    names = set((await conn.execute(sa.select(WORKERS.c.id))).scalars())
    names |= set(
        (
            await conn.execute(
                sa.select(RATE_GRANTS.c.worker).where(RATE_GRANTS.c.ended_at.is_(None)).distinct()
            )
        ).scalars()
    )
    names -= set(alive)
    if not names:
        return []
    held = await held_locks(conn)
    return sorted(n for n in names if lock_parts(n) not in held)
