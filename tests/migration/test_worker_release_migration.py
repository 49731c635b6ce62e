"""`0017_worker_release`: from 0016, the `workers` rows are kept with `release` NULL (written by
the previous release: an operation is then not opened to dispatch while listed, D101), a row
can carry it after, and a downgrade drops the column and keeps the rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from jobs.store.migrate import alembic_config, downgrade, upgrade

pytestmark = pytest.mark.migration

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BEFORE = "0016_outbox_txid"
MINE = "0017_worker_release"


def _run(url: str, *sql: str, **params: Any) -> list[list[tuple[Any, ...]]]:
    """Execute the statements in one transaction; the rows of each that returns rows."""

    async def run() -> list[list[tuple[Any, ...]]]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                out = []
                for text in sql:
                    result = await conn.execute(sa.text(text), params)
                    out.append([tuple(r) for r in result.all()] if result.returns_rows else [])
                return out
        finally:
            await engine.dispose()

    return asyncio.run(run())


_OLD_ROW = (
    "INSERT INTO workers (id, hostname, pid, started_at, heartbeat_at, expires_at, draining) "
    "VALUES ('old', 'h', 1, :t, :t, :t, false)"
)
_NEW_ROW = (
    "INSERT INTO workers (id, hostname, pid, started_at, heartbeat_at, expires_at, draining, "
    "release) VALUES ('new', 'h', 2, :t, :t, :t, false, 1)"
)


def test_the_revision_follows_0016(sqlite_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(sqlite_url))
    revision = script.get_revision(MINE)
    assert revision is not None and revision.down_revision == BEFORE


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_the_rows_of_the_previous_release_read_as_such(
    database: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url"))
    upgrade(url, BEFORE)
    _run(url, _OLD_ROW, t=T0)
    upgrade(url, MINE)
    _run(url, _NEW_ROW, t=T0)
    [rows] = _run(url, "SELECT id, release FROM workers ORDER BY id")
    assert rows == [("new", 1), ("old", None)]
    downgrade(url, BEFORE)
    [rows] = _run(url, "SELECT id FROM workers ORDER BY id")
    assert rows == [("new",), ("old",)]
    upgrade(url)  # and up again to head
