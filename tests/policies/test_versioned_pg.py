"""Versioned writes (`fleet.policies.versioned`) on PostgreSQL: a change made from a version that
another transaction changes meanwhile is refused (409 in the API), never written over it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from fleet.policies.periods import parse_schedule_spec
from fleet.policies.store_schedules import ScheduleConflict, ScheduleStore
from jobs.store.db import Database
from jobs.store.migrate import upgrade

NOW = datetime(2026, 3, 1, tzinfo=UTC)
OFFICE = {"name": "office", "timezone": "Europe/Berlin", "periods": [{"begintime": "08:00"}]}


async def test_a_change_racing_another_from_the_same_version_is_a_conflict(pg_url: str) -> None:
    await asyncio.to_thread(upgrade, pg_url)
    db = Database(pg_url)
    other = create_async_engine(pg_url)
    try:
        store = ScheduleStore(db)
        await store.insert(parse_schedule_spec(OFFICE), "a", NOW)
        changed = parse_schedule_spec({**OFFICE, "timezone": "UTC"})
        async with other.connect() as conn:
            trans = await conn.begin()
            await conn.execute(
                sa.text("UPDATE schedules SET version = 2, updated_by = 'b' WHERE name = 'office'")
            )  # another writer holds the row, at version 1 for everyone else until it commits
            racing = asyncio.create_task(store.update(changed, "c", NOW))  # reads version 1
            await asyncio.sleep(0.5)
            assert not racing.done()  # its write waits for the row
            await trans.commit()
        with pytest.raises(ScheduleConflict, match="changed meanwhile"):
            await racing
        stored = await store.get("office")
        assert stored is not None
        assert (stored.version, stored.updated_by, stored.spec.timezone) == (
            2,
            "b",
            "Europe/Berlin",
        )
    finally:
        await other.dispose()
        await db.dispose()
