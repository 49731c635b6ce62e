"""`0003_policies` and `0005_policy_marks`: upgrade creates exactly the tables
`fleet.policies.tables` describes, on SQLite and PostgreSQL, and downgrading to the revision
before them removes them."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from fleet.policies.tables import POLICY_METADATA
from jobs.store.migrate import alembic_config, downgrade, upgrade

MINE = set(POLICY_METADATA.tables)


def _only_mine(name: str | None, type_: str, parent: object) -> bool:
    return type_ != "table" or name in MINE


def _inspect(url: str) -> tuple[list[object], set[str]]:
    def work(conn: sa.Connection) -> tuple[list[object], set[str]]:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": _only_mine}
        )
        return compare_metadata(context, POLICY_METADATA), set(sa.inspect(conn).get_table_names())

    async def run() -> tuple[list[object], set[str]]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_the_revision_follows_the_api_tokens_revision(sqlite_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(sqlite_url))
    revision = script.get_revision("0003")
    assert revision is not None and revision.down_revision == "0002"
    marks = script.get_revision("0005")
    assert marks is not None and marks.down_revision == "0004"


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_upgrade_creates_the_policy_tables_as_described(
    database: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url"))
    upgrade(url)
    diff, tables = _inspect(url)
    assert tables >= MINE
    assert diff == []
    downgrade(url, "0002")
    _, tables = _inspect(url)
    assert tables.isdisjoint(MINE) and "operations" in tables
