"""Alembic: `upgrade head` on an empty database, then nothing left for autogenerate to find."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from jobs.states import State
from jobs.store.migrate import alembic_config, downgrade, target_metadata, upgrade

pytestmark = pytest.mark.migration


def _inspect(url: str) -> tuple[list[Any], set[str], str | None, list[str]]:
    """(autogenerate diff, table names, current revision, check constraints of subjobs)."""

    def work(conn: sa.Connection) -> tuple[list[Any], set[str], str | None, list[str]]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, target_metadata())
        inspector = sa.inspect(conn)
        tables = set(inspector.get_table_names())
        checks = (
            [c["sqltext"] for c in inspector.get_check_constraints("subjobs")]
            if ("subjobs" in tables)
            else []
        )
        return diff, tables, context.get_current_revision(), checks

    async def run() -> tuple[list[Any], set[str], str | None, list[str]]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _allowed_states(check_sql: str) -> set[str]:
    """The quoted values of the reflected CHECK (PostgreSQL rewrites IN as = ANY (ARRAY[...]))."""
    return set(re.findall(r"'(\w+)'", check_sql))


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_upgrade_head_leaves_no_autogenerate_diff(
    database: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url"))
    upgrade(url)
    diff, tables, revision, checks = _inspect(url)
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert revision == head
    assert {"operations", "subjobs", "cloud_calls", "events", "workers", "leases"} <= tables
    assert diff == []
    # the state CHECK in the revision is the enum of today (adding a state needs a revision)
    [check] = [c for c in checks if "pending" in c]
    assert _allowed_states(check) == {s.value for s in State}
    upgrade(url)  # idempotent at head


def test_downgrade_to_base_removes_the_schema(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    downgrade(sqlite_url, "base")
    _, tables, revision, _ = _inspect(sqlite_url)
    assert revision is None
    assert tables.isdisjoint({"operations", "subjobs", "events"})


def test_a_url_with_percent_signs_is_not_interpolated(tmp_path: Path) -> None:
    """Alembic's ini interpolation would choke on '%'; the URL is passed around it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'odd%20name.db'}"
    upgrade(url)
    [created] = list(tmp_path.glob("odd*.db"))
    _, tables, _, _ = _inspect(f"sqlite+aiosqlite:///{created}")
    assert "subjobs" in tables
