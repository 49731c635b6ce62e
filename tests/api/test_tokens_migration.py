"""`0002_api_tokens`: upgrade creates exactly the table `fleet.tokens` describes, on SQLite and
PostgreSQL; downgrading below it removes the table and nothing else of the engine's."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from fleet.tokens import METADATA
from jobs.store.migrate import alembic_config, downgrade, upgrade

MINE = set(METADATA.tables)


def _only_mine(name: str | None, type_: str, parent: object) -> bool:
    return type_ != "table" or name in MINE


def _inspect(url: str) -> tuple[list[object], set[str]]:
    def work(conn: sa.Connection) -> tuple[list[object], set[str]]:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": _only_mine}
        )
        return compare_metadata(context, METADATA), set(sa.inspect(conn).get_table_names())

    async def run() -> tuple[list[object], set[str]]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_the_revision_follows_the_engine_schema(sqlite_url: str) -> None:
    revision = ScriptDirectory.from_config(alembic_config(sqlite_url)).get_revision("0002")
    assert revision is not None and revision.down_revision == "0001"


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_upgrade_creates_the_tokens_table_as_described(
    database: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url"))
    upgrade(url, "0002")
    diff, tables = _inspect(url)
    assert "api_tokens" in tables
    assert diff == []
    upgrade(url)  # later revisions keep it as it is
    assert _inspect(url)[0] == []
    downgrade(url, "0001")
    diff, tables = _inspect(url)
    assert "api_tokens" not in tables
    assert {"operations", "subjobs", "events"} <= tables
