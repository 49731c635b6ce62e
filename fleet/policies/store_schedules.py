"""The schedules defined through the API (`schedules` table), on SQLite or PostgreSQL. The ones in
policy files are never stored: the files are their truth and are read at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from fleet.policies.periods import ScheduleSpec
from fleet.policies.tables import SCHEDULES
from fleet.policies.versioned import insert_first, update_next
from jobs.store.db import Database

_S = SCHEDULES.c


class ScheduleConflict(Exception):
    """The change clashes with what is stored (name taken, a file schedule, version moved)."""


@dataclass(frozen=True)
class ScheduleRecord:
    spec: ScheduleSpec
    source: str  # "api" or "file"
    version: int
    created_at: datetime | None
    updated_at: datetime | None
    created_by: str
    updated_by: str

    @property
    def name(self) -> str:
        return self.spec.name


def _record(m: RowMapping) -> ScheduleRecord:
    return ScheduleRecord(
        spec=ScheduleSpec.model_validate(m["spec"]),
        source="api",
        version=m["version"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        created_by=m["created_by"],
        updated_by=m["updated_by"],
    )


class ScheduleStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self) -> list[ScheduleRecord]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(SCHEDULES).order_by(_S.name))).all()
        return [_record(r._mapping) for r in rows]

    async def get(self, name: str) -> ScheduleRecord | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(SCHEDULES).where(_S.name == name))).first()
        return None if row is None else _record(row._mapping)

    async def insert(self, spec: ScheduleSpec, by: str, now: datetime) -> ScheduleRecord:
        values = {
            "name": spec.name,
            "spec": spec.to_json(),
            "created_at": now,
            "updated_at": now,
            "created_by": by,
            "updated_by": by,
        }
        taken = ScheduleConflict(f"a schedule named {spec.name!r} exists")
        await insert_first(self.db, SCHEDULES, values, taken)
        stored = await self.get(spec.name)
        assert stored is not None
        return stored

    async def update(
        self, spec: ScheduleSpec, by: str, now: datetime, expected_version: int | None = None
    ) -> ScheduleRecord | None:
        """The new spec, if the schedule is (still) at `expected_version` (else the one read)."""
        changes = {"spec": spec.to_json(), "updated_at": now, "updated_by": by}
        found = await update_next(
            self.db, SCHEDULES, _S.name, spec.name, expected_version, lambda _: changes,
            ScheduleConflict,
        )  # fmt: skip
        return await self.get(spec.name) if found else None

    async def delete(self, name: str) -> bool:
        async with self.db.write() as conn:
            result = await conn.execute(sa.delete(SCHEDULES).where(_S.name == name))
        return bool(result.rowcount)
