"""PostgreSQL's pool: a pooled connection is checked with one `SELECT 1` as it is taken (one round
trip, no transaction; SQLAlchemy's pre-ping sent BEGIN, a statement and ROLLBACK),
and a connection the server has closed meanwhile is replaced before anyone uses it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from jobs.store.db import Database

pytestmark = pytest.mark.postgres

_PID = sa.text("SELECT pg_backend_pid()")


async def _driver(db: Database) -> Any:
    """The pool's one connection, as asyncpg's own (checked in again)."""
    async with db.read() as conn:
        raw = await conn.get_raw_connection()
        return raw.driver_connection


async def test_taking_a_connection_costs_one_statement_and_no_transaction(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1)
    try:
        driver = await _driver(db)
        sent: list[str] = []  # what asyncpg runs itself (the store's statements are prepared)
        driver.add_query_logger(lambda record: sent.append(record.query))
        async with db.read() as conn:
            assert (await conn.execute(_PID)).scalar_one() > 0
        assert sent == ["SELECT 1"]  # the pre-ping was BEGIN, ";" and ROLLBACK
    finally:
        await db.dispose()


async def test_a_connection_the_server_closed_is_replaced_when_taken(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1)
    other = Database(pg_url, pool_size=1)
    try:
        async with db.read() as conn:
            pid = (await conn.execute(_PID)).scalar_one()
        async with other.write() as conn:
            stop = sa.text("SELECT pg_terminate_backend(:pid)")
            assert (await conn.execute(stop, {"pid": pid})).scalar_one() is True
        await asyncio.sleep(0.2)  # the backend is gone
        async with db.read() as conn:
            assert (await conn.execute(_PID)).scalar_one() != pid
        async with db.write() as conn:
            assert (await conn.execute(sa.text("SELECT 1"))).scalar_one() == 1
    finally:
        await db.dispose()
        await other.dispose()
