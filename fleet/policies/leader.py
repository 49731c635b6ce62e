"""Who runs the scheduler: one leader per database.

PostgreSQL: a session-level advisory lock held on a dedicated connection (outside the pool, in
autocommit so no transaction stays open). When the leader dies, even by SIGKILL, the server ends
its session and the lock is free at once; a standby that retries every few seconds takes over.
The leader re-checks its connection before and between wake-ups; a leader that lost its
connection steps down. Exactly-once does not rest on this: two leaders for a moment would still
fire each slot once (the unique slot row), leadership only keeps the work in one place.

SQLite: one process by design (the embedded default), so it is always the leader.
"""

from __future__ import annotations

from typing import Protocol

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = structlog.get_logger("fleet.policies.leader")

# pg_advisory_lock takes a bigint; this one is fleet's scheduler ("fleetpol" in ASCII).
LOCK_KEY = 0x666C656574706F6C
# Who exports the database-wide metrics when the policies are disabled ("fleetmet").
TOTALS_KEY = 0x666C6565746D6574


class Leadership(Protocol):
    async def acquire(self) -> bool:
        """Try once to become (or stay) the leader; True if this process leads now."""
        ...

    async def held(self) -> bool:
        """Still the leader? (False after the connection behind the lock was lost.)"""
        ...

    async def release(self) -> None: ...


class AlwaysLeader:
    """SQLite: the only process is the leader."""

    async def acquire(self) -> bool:
        return True

    async def held(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class AdvisoryLock:
    """PostgreSQL `pg_try_advisory_lock` on a connection of its own."""

    def __init__(self, url: str, key: int = LOCK_KEY) -> None:
        self._url = url
        self._key = key
        self._engine: AsyncEngine | None = None
        self._conn: AsyncConnection | None = None
        self._held = False

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            if self._engine is None:
                self._engine = create_async_engine(self._url, poolclass=NullPool)
            conn = await self._engine.connect()
            self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # the connection is already broken: nothing to close cleanly
                log.debug("leader_connection_close_failed")

    async def acquire(self) -> bool:
        if self._held:
            return await self.held()
        try:
            conn = await self._connection()
            got = (await conn.execute(sa.select(sa.func.pg_try_advisory_lock(self._key)))).scalar()
        except (sa.exc.DBAPIError, OSError) as exc:
            log.warning("leader_lock_unavailable", error=str(exc))
            await self._drop()
            return False
        self._held = bool(got)
        return self._held

    async def held(self) -> bool:
        if not self._held or self._conn is None:
            return False
        stmt = sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid() AND objid = :lo AND classid = :hi"
        )
        try:
            found = (
                await self._conn.execute(
                    stmt, {"lo": self._key & 0xFFFFFFFF, "hi": self._key >> 32}
                )
            ).scalar()
        except (sa.exc.DBAPIError, OSError) as exc:
            log.warning("leader_connection_lost", error=str(exc))
            await self._drop()
            return False
        if not found:
            await self._drop()
        return bool(found)

    async def release(self) -> None:
        if self._held and self._conn is not None:
            try:
                await self._conn.execute(sa.select(sa.func.pg_advisory_unlock(self._key)))
            except (sa.exc.DBAPIError, OSError):
                log.debug("leader_unlock_failed")
        await self._drop()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


def leadership_for(url: str, key: int = LOCK_KEY) -> Leadership:
    postgres = make_url(url).get_backend_name() == "postgresql"
    return AdvisoryLock(url, key) if postgres else AlwaysLeader()
