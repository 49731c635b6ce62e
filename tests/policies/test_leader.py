"""Leadership on PostgreSQL: one advisory-lock holder; when its session dies (as with SIGKILL)
the lock is free at once and a standby takes it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from fleet.policies.leader import AdvisoryLock, AlwaysLeader, leadership_for


async def _terminate_the_lock_holder(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted"
                )
            )
            return len(result.all())
    finally:
        await engine.dispose()


async def test_one_leader_and_the_standby_takes_over_when_its_session_dies(pg_url: str) -> None:
    first, second = AdvisoryLock(pg_url), AdvisoryLock(pg_url)
    try:
        assert await first.acquire()
        assert await first.acquire()  # staying leader is idempotent
        assert not await second.acquire()
        assert await first.held() and not await second.held()
        assert await _terminate_the_lock_holder(pg_url) == 1  # the leader's session dies
        assert not await first.held()
        assert await second.acquire()
        assert not await first.acquire()  # the old leader comes back as a standby
        await second.release()
        assert await first.acquire()
    finally:
        await first.release()
        await second.release()


def test_sqlite_is_always_its_own_leader(sqlite_url: str) -> None:
    assert isinstance(leadership_for(sqlite_url), AlwaysLeader)
    assert isinstance(leadership_for("postgresql+asyncpg://u@h/db"), AdvisoryLock)
