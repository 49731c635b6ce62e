"""`0011_drift`: upgrade creates exactly the tables `fleet.policies.tables_tracking` describes,
on SQLite and PostgreSQL, and downgrading to the revision before removes them."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from fleet.policies.tables_tracking import TRACKING_METADATA
from jobs.store.migrate import downgrade, upgrade

MINE = set(TRACKING_METADATA.tables)


def _only_mine(name: str | None, type_: str, parent: object) -> bool:
    return type_ != "table" or name in MINE


def _inspect(url: str) -> tuple[list[object], set[str]]:
    def work(conn: sa.Connection) -> tuple[list[object], set[str]]:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": _only_mine}
        )
        tables = set(sa.inspect(conn).get_table_names())
        return compare_metadata(context, TRACKING_METADATA), tables

    async def run() -> tuple[list[object], set[str]]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_upgrade_creates_the_tracking_tables_as_described(
    database: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url"))
    upgrade(url)
    diff, tables = _inspect(url)
    assert tables >= MINE
    assert diff == []
    downgrade(url, "0008_throttled_since")
    _, tables = _inspect(url)
    assert tables.isdisjoint(MINE) and "operations" in tables
