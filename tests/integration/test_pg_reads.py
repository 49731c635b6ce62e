"""PostgreSQL reads: a plain read runs each statement on its own (autocommit), one round trip
instead of BEGIN, the statement and ROLLBACK, and sees what READ COMMITTED saw; a snapshot read
stays one REPEATABLE READ transaction."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from jobs.store.db import Database

pytestmark = pytest.mark.postgres

# the transaction a statement runs in: one per statement, or the same for the whole block
_XACT = sa.text("SELECT txid_current()")


async def test_a_plain_read_runs_every_statement_on_its_own(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        async with db.read() as conn:
            first = (await conn.execute(_XACT)).scalar_one()
            assert (await conn.execute(_XACT)).scalar_one() != first
    finally:
        await db.dispose()


async def test_a_plain_read_sees_each_commit_at_once(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        async with db.write() as conn:
            await conn.execute(sa.text("CREATE TABLE t (n int)"))
        async with db.read() as conn:
            before = (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar_one()
            async with db.write() as other:
                await other.execute(sa.text("INSERT INTO t VALUES (1)"))
            after = (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar_one()
        assert (before, after) == (0, 1)
    finally:
        await db.dispose()


async def test_a_snapshot_read_is_one_transaction(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        async with db.write() as conn:
            await conn.execute(sa.text("CREATE TABLE t (n int)"))
        async with db.read(snapshot=True) as conn:
            first = (await conn.execute(_XACT)).scalar_one()
            assert (await conn.execute(_XACT)).scalar_one() == first
            before = (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar_one()
            async with db.write() as other:
                await other.execute(sa.text("INSERT INTO t VALUES (1)"))
            after = (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar_one()
        assert (before, after) == (0, 0)
    finally:
        await db.dispose()
