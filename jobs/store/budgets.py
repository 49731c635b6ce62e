"""The shared budget ledger (PostgreSQL): `rate_grants` rows, one per call let through a limited
rate key by any replica (`jobs.sharedlimit` decides; this module only reads and writes).

- `exchange` runs in one transaction that first takes a transaction-level advisory lock on the
  key (two int4 keys: fleet's class and `hashtext(key)`, apart from the workers' bigint locks), so
  the replicas' decisions on one key are serialised and each sees every grant committed before.
- Times are the database's (`clock_timestamp()`); ages are read as seconds.
- An answer is written by a short background transaction (`ended`): the oldest in-flight row of
  this worker with that key and size gets `ended_at` (rows of one size are interchangeable).
  Until it is written the call counts as in flight, for this worker as for the others: every
  exchange reads ALL of the key's rows that count, its own included, from one snapshot. (Merging
  this process's own calls from memory with the rows read lost a call whenever its answer came
  between the two reads and its write committed after the table's: one call too many.)
- In-flight rows of a worker that died are ended by the reaper (`leases.reap`), those of this
  worker's previous life when this life's ledger opens (`open`, right after the name's lock is
  taken and before this life's first grant, so none of this life's calls is among them) and its
  own at a clean stop (`close`). The reaper judges a worker dead when nobody holds its name's
  lock, so whoever writes rows under a name holds that name's lock (`jobs.store.identity`) from
  before `open` until `close` has ended them (D81).
- Rows that no longer count are deleted by the next exchange on their key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from jobs.clock import Clock
from jobs.sharedlimit import Decide, Entry
from jobs.store.db import Database
from jobs.store.models import RATE_GRANTS

log = structlog.get_logger("jobs.budgets")

LOCK_CLASS = 0x666C7274  # "flrt": the first int4 of every rate key's transaction lock
FLUSH_PAUSE = 0.5  # seconds before writing answers again after a failed write

_LOCK = sa.text("SELECT pg_advisory_xact_lock(:cls, hashtext(:key))")
_LOAD = sa.text(
    "SELECT requests, servers, answered, "
    "extract(epoch FROM clock_timestamp() - ended_at) AS age "
    "FROM rate_grants WHERE rate_key = :key AND ("
    "ended_at IS NULL OR ended_at > clock_timestamp() - make_interval(secs => :keep))"
)
_PURGE = sa.text(
    "DELETE FROM rate_grants WHERE rate_key = :key "
    "AND ended_at < clock_timestamp() - make_interval(secs => :keep)"
)
_INSERT = sa.text(
    "INSERT INTO rate_grants (rate_key, worker, requests, servers, answered, granted_at, ended_at)"
    " VALUES (:key, :worker, 1, :servers, false, clock_timestamp(), "
    "CASE WHEN :flying THEN NULL ELSE clock_timestamp() END)"
)
_END_ONE = sa.text(
    "UPDATE rate_grants SET ended_at = clock_timestamp(), answered = true WHERE id = ("
    "SELECT id FROM rate_grants WHERE rate_key = :key AND worker = :worker "
    "AND servers = :servers AND ended_at IS NULL ORDER BY id LIMIT 1)"
)


class SqlLedger:
    """`jobs.sharedlimit.Ledger` on PostgreSQL, for one worker."""

    def __init__(self, db: Database, worker: str, clock: Clock) -> None:
        if not db.is_postgres:
            raise ValueError("a shared budget ledger needs PostgreSQL")
        self._db = db
        self._worker = worker
        self._clock = clock
        self._pending: list[tuple[str, int]] = []  # answers (key, servers) not yet written
        self._flusher: asyncio.Task[None] | None = None

    async def open(self) -> int:
        """End the rows a previous life of this worker's name left in flight (it was killed).
        Called once the name's lock is held and before this life's first grant: the lock keeps
        every other live process from writing under the name, so every such row is the previous
        life's, and none is this life's (ended later, a call of this life would stop counting
        before its answer). Returns how many were ended."""
        async with self._db.write() as conn:
            ended = await end_worker(conn, [self._worker])
        if ended:
            log.info("previous_life_budget_rows_ended", worker=self._worker, rows=ended)
        return ended

    async def exchange(self, key: str, keep: float, decide: Decide) -> None:
        async with self._db.write() as conn:
            await conn.execute(_LOCK, {"cls": LOCK_CLASS, "key": key})
            await conn.execute(_PURGE, {"key": key, "keep": keep})
            rows = await conn.execute(_LOAD, {"key": key, "keep": keep})
            entries = [
                Entry(r.requests, r.servers, r.answered, None if r.age is None else float(r.age))
                for r in rows
            ]
            grants = decide(entries)
            if grants:
                await conn.execute(
                    _INSERT,
                    [
                        {"key": key, "worker": self._worker, "servers": s, "flying": until_done}
                        for s, until_done in grants
                    ],
                )

    def ended(self, key: str, servers: int) -> None:
        self._pending.append((key, servers))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="rate-grants-flush")

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the answers of this moment go in one transaction
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                async with self._db.write() as conn:
                    await conn.execute(
                        _END_ONE,
                        [{"key": k, "worker": self._worker, "servers": s} for k, s in batch],
                    )
            except Exception as exc:  # in flight for everyone meanwhile; written on the next try
                log.warning("rate_grants_write_failed", error=repr(exc))
                self._pending[:0] = batch
                await self._clock.sleep(FLUSH_PAUSE)

    async def close(self) -> None:
        """Write what is pending, then end every in-flight row of this worker (a clean stop)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        self._pending = []
        try:
            async with self._db.write() as conn:
                await end_worker(conn, [self._worker])
        except Exception as exc:  # the reaper ends them when this worker's lock is gone
            log.warning("rate_grants_close_failed", error=repr(exc))


async def end_worker(conn: AsyncConnection, workers: Sequence[str]) -> int:
    """End the in-flight rows of `workers` now (dead, or this worker's previous life): a call they
    had in flight reached the cloud, if ever, before now, so it counts for a period from now."""
    if not workers:
        return 0
    result = await conn.execute(
        sa.update(RATE_GRANTS)
        .where(RATE_GRANTS.c.worker.in_(list(workers)), RATE_GRANTS.c.ended_at.is_(None))
        .values(ended_at=sa.func.clock_timestamp(), answered=True)
    )
    return int(result.rowcount)
