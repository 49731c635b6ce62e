"""Shared set-up for the job-store contract tests: the same store on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobs.store import SqlJobStore

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Runs on PostgreSQL carry the `postgres` marker, so `-m "not postgres"` deselects them."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        mine = HERE in Path(str(item.fspath)).resolve().parents
        if mine and callspec is not None and callspec.params.get("db_url") == "postgresql":
            item.add_marker(pytest.mark.postgres)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlJobStore]:
    s = SqlJobStore(db_url)
    await s.create_schema()
    try:
        yield s
    finally:
        await s.close()
