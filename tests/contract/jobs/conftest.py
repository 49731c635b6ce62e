"""Shared set-up for the job-store contract tests: the same store on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from jobs_store_helpers import counts_and_truth

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
    """The store; when the test is done, every operation's kept per-state counts must be what
    its sub-jobs say (whatever transitions the test went through)."""
    s = SqlJobStore(db_url)
    await s.create_schema()
    try:
        yield s
        kept, actual = await counts_and_truth(s)
        assert kept == actual, "the kept per-state counts differ from the sub-jobs"
    finally:
        await s.close()
