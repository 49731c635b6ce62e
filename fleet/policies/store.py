"""All of the policy package's SQL (SQLAlchemy Core), on SQLite or PostgreSQL.

It shares the engine's `jobs.store.db.Database` (one pool; on SQLite one in-process writer queue). The
rule that makes firing exactly-once is the unique (policy_id, scheduled_at) of `policy_fires`:
`claim` inserts with ON CONFLICT DO NOTHING and only the inserter goes on. The operation a fire
creates is written to its row (`set_request`, compare-and-set) before it is created, so whoever
finishes an interrupted fire creates the very same operation under the same idempotency key.
Restore bookkeeping lives in `fleet.policies.store_restore`, the marks fleet keeps on dialects
without a tag API in `fleet.policies.store_marks` (base classes of `PolicyStore`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet.policies.model import PolicySpec
from fleet.policies.notify import fire_finished, slots_skipped
from fleet.policies.records import (
    FireRecord,
    FireStatus,
    PolicyRecord,
    Source,
    Trigger,
)
from fleet.policies.store_marks import MarkRecords
from fleet.policies.store_restore import RestoreRecords, fire_of
from fleet.policies.tables import POLICIES, POLICY_FIRES
from fleet.policies.versioned import insert_first, update_next
from jobs.store.db import Database
from jobs.types import JSONMapping, JSONObject

_F = POLICY_FIRES.c
_P = POLICIES.c
CHUNK = 1000


class PolicyConflict(Exception):
    """The change clashes with what is stored (name taken, file policy, version moved)."""


def _policy(m: RowMapping) -> PolicyRecord:
    return PolicyRecord(
        id=m["id"],
        source=Source(m["source"]),
        spec=PolicySpec.model_validate(m["spec"]),
        version=m["version"],
        active_since=m["active_since"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        created_by=m["created_by"],
        updated_by=m["updated_by"],
    )


def schedule_changed(old: PolicySpec, new: PolicySpec) -> bool:
    """A new cron, time zone or a re-enable starts the policy's slots afresh (no catch-up of
    slots that belonged to the old schedule or to the disabled time)."""
    return old.cron != new.cron or old.timezone != new.timezone or (new.enabled and not old.enabled)


class PolicyStore(RestoreRecords, MarkRecords):
    def __init__(self, db: Database) -> None:
        self.db = db

    def _insert(self) -> type[sa.Insert]:
        return cast(type[sa.Insert], postgresql.insert if self.db.is_postgres else sqlite.insert)

    # --- policies -------------------------------------------------------------------------------

    async def list_policies(self) -> list[PolicyRecord]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(POLICIES).order_by(_P.id))).all()
        return [_policy(r._mapping) for r in rows]

    async def get_policy(self, policy_id: str) -> PolicyRecord | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(POLICIES).where(_P.id == policy_id))).first()
        return None if row is None else _policy(row._mapping)

    async def insert_policy(
        self, spec: PolicySpec, source: Source, by: str, now: datetime
    ) -> PolicyRecord:
        values = {
            "id": spec.name,
            "source": source.value,
            "spec": spec.to_json(),
            "active_since": now,
            "created_at": now,
            "updated_at": now,
            "created_by": by,
            "updated_by": by,
        }
        taken = PolicyConflict(f"a policy named {spec.name!r} exists")
        await insert_first(self.db, POLICIES, values, taken)
        stored = await self.get_policy(spec.name)
        assert stored is not None
        return stored

    async def update_policy(
        self, spec: PolicySpec, by: str, now: datetime, expected_version: int | None = None
    ) -> PolicyRecord | None:
        """The new spec, if the policy is (still) at `expected_version` (else the one read)."""
        found = await update_next(
            self.db, POLICIES, _P.id, spec.name, expected_version,
            lambda m: self._changes(_policy(m), spec, by, now), PolicyConflict,
        )  # fmt: skip
        return await self.get_policy(spec.name) if found else None

    @staticmethod
    def _changes(old: PolicyRecord, spec: PolicySpec, by: str, now: datetime) -> dict[str, object]:
        return {
            "spec": spec.to_json(),
            "active_since": now if schedule_changed(old.spec, spec) else old.active_since,
            "updated_at": now,
            "updated_by": by,
        }

    async def delete_policy(self, policy_id: str) -> bool:
        async with self.db.write() as conn:
            result = await conn.execute(sa.delete(POLICIES).where(_P.id == policy_id))
        return bool(result.rowcount)

    async def sync_files(self, specs: Sequence[PolicySpec], by: str, now: datetime) -> list[str]:
        """Make the file policies in the database what the files say (insert, update, remove);
        returns what changed. A name already used by an API policy is a PolicyConflict."""
        for attempt in range(3):
            try:
                async with self.db.write() as conn:
                    return await self._sync(conn, specs, by, now)
            except IntegrityError:  # another replica inserted the same file policy just now
                if attempt == 2:
                    raise
        return []

    async def _sync(
        self, conn: AsyncConnection, specs: Sequence[PolicySpec], by: str, now: datetime
    ) -> list[str]:
        rows = {r.id: _policy(r._mapping) for r in (await conn.execute(sa.select(POLICIES))).all()}
        changed: list[str] = []
        for spec in specs:
            old = rows.pop(spec.name, None)
            if old is not None and old.source is Source.API:
                raise PolicyConflict(f"{spec.name!r} already exists as an API policy")
            if old is None:
                await conn.execute(
                    POLICIES.insert().values(
                        id=spec.name, source=Source.FILE.value, spec=spec.to_json(), version=1,
                        active_since=now, created_at=now, updated_at=now,
                        created_by=by, updated_by=by,
                    )
                )  # fmt: skip
                changed.append(f"added {spec.name}")
            elif old.spec != spec:
                values = self._changes(old, spec, by, now)
                await conn.execute(sa.update(POLICIES).where(_P.id == spec.name).values(**values))
                changed.append(f"updated {spec.name}")
        for name, old in rows.items():
            if old.source is Source.FILE:
                await conn.execute(sa.delete(POLICIES).where(_P.id == name))
                changed.append(f"removed {name}")
        return changed

    # --- fires ------------------------------------------------------------------------------------

    async def claim(
        self,
        policy_id: str,
        slot: datetime,
        *,
        trigger: Trigger,
        key: str,
        dry_run: bool,
        worker: str,
        by: str,
        now: datetime,
        take_over_skipped: bool = False,
    ) -> tuple[FireRecord, bool]:
        """Claim a slot (status FIRING); (the existing row, False) when someone has it already.
        `take_over_skipped` lets a manual run take a slot that was recorded as skipped."""
        values = {
            "policy_id": policy_id, "scheduled_at": slot, "trigger": trigger.value,
            "status": FireStatus.FIRING.value, "idempotency_key": key, "dry_run": dry_run,
            "targets": 0, "details": {}, "worker": worker, "by": by, "claimed_at": now,
        }  # fmt: skip
        insert = self._insert()(POLICY_FIRES).values(**values)
        stmt = insert.on_conflict_do_nothing(  # type: ignore[attr-defined]
            index_elements=["policy_id", "scheduled_at"]
        ).returning(_F.id)
        slot_of = sa.and_(_F.policy_id == policy_id, _F.scheduled_at == slot)
        async with self.db.write() as conn:
            inserted = (await conn.execute(stmt)).first()
            created = inserted is not None
            if not created and take_over_skipped:
                taken = await conn.execute(
                    sa.update(POLICY_FIRES)
                    .where(slot_of, _F.status == FireStatus.SKIPPED.value)
                    .values(**values, reason=None, finished_at=None)
                )
                created = bool(taken.rowcount)
            row = (await conn.execute(sa.select(POLICY_FIRES).where(slot_of))).one()
        return fire_of(row._mapping), created

    async def record_skips(
        self,
        policy_id: str,
        skips: Sequence[tuple[datetime, str, str]],
        *,
        dry_run: bool,
        worker: str,
        now: datetime,
    ) -> int:
        """Record (slot, reason, key) rows as SKIPPED, leaving slots someone else recorded."""
        rows = [
            {
                "policy_id": policy_id, "scheduled_at": slot, "trigger": Trigger.SCHEDULE.value,
                "status": FireStatus.SKIPPED.value, "reason": reason, "idempotency_key": key,
                "dry_run": dry_run, "targets": 0, "details": {}, "worker": worker,
                "by": "schedule", "claimed_at": now, "finished_at": now,
            }
            for slot, reason, key in skips
        ]  # fmt: skip
        count = 0
        async with self.db.write() as conn:
            for i in range(0, len(rows), CHUNK):
                stmt = (
                    self._insert()(POLICY_FIRES)
                    .on_conflict_do_nothing(  # type: ignore[attr-defined]
                        index_elements=["policy_id", "scheduled_at"]
                    )
                    .returning(_F.scheduled_at, _F.reason)
                )
                result = await conn.execute(stmt, rows[i : i + CHUNK])
                recorded = [(r.scheduled_at, str(r.reason)) for r in result.all()]
                count += len(recorded)
                await slots_skipped(conn, policy_id, recorded, now)
        return count

    async def recorded_slots(self, policy_id: str, start: datetime, end: datetime) -> set[datetime]:
        stmt = sa.select(_F.scheduled_at).where(
            _F.policy_id == policy_id, _F.scheduled_at >= start, _F.scheduled_at <= end
        )
        async with self.db.read() as conn:
            return {r[0] for r in (await conn.execute(stmt)).all()}

    async def last_scheduled(self, policy_id: str) -> datetime | None:
        """The latest slot the schedule has dealt with (manual runs do not move it)."""
        stmt = sa.select(sa.func.max(_F.scheduled_at)).where(
            _F.policy_id == policy_id, _F.trigger == Trigger.SCHEDULE.value
        )
        async with self.db.read() as conn:
            return cast(datetime | None, (await conn.execute(stmt)).scalar())

    async def set_request(
        self, fire_id: int, request: JSONObject, targets: int, details: JSONObject
    ) -> JSONMapping:
        """Write the operation this fire creates, unless one is written already; returns the
        request that stands (the first writer's)."""
        async with self.db.write() as conn:
            await conn.execute(
                sa.update(POLICY_FIRES)
                .where(_F.id == fire_id, _F.request.is_(None))
                .values(request=request, targets=targets, details=details)
            )
            stored = (await conn.execute(sa.select(_F.request).where(_F.id == fire_id))).scalar()
        return cast(JSONMapping, stored)

    async def finish(
        self,
        fire_id: int,
        status: FireStatus,
        now: datetime,
        *,
        reason: str | None = None,
        operation_id: str | None = None,
        details: JSONObject | None = None,
    ) -> FireRecord:
        values: dict[str, object] = {"status": status.value, "finished_at": now, "reason": reason}
        if operation_id is not None:
            values["operation_id"] = operation_id
        if details is not None:
            values["details"] = details
        async with self.db.write() as conn:
            await conn.execute(sa.update(POLICY_FIRES).where(_F.id == fire_id).values(**values))
            row = (await conn.execute(sa.select(POLICY_FIRES).where(_F.id == fire_id))).one()
            await fire_finished(conn, row._mapping, now)  # the webhook event, in this transaction
        return fire_of(row._mapping)

    async def getfire_of(self, fire_id: int) -> FireRecord | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(POLICY_FIRES).where(_F.id == fire_id))).first()
        return None if row is None else fire_of(row._mapping)

    async def list_fires(
        self, policy_id: str | None, limit: int, before_id: int | None = None
    ) -> list[FireRecord]:
        """Newest slot first; `before_id`: the fires after that one in this order (a fire of an
        older slot can have a higher id: a slot fired late, by hand)."""
        stmt = sa.select(POLICY_FIRES).order_by(_F.scheduled_at.desc(), _F.id.desc())
        if policy_id is not None:
            stmt = stmt.where(_F.policy_id == policy_id)
        if before_id is not None:
            slot = sa.select(_F.scheduled_at).where(_F.id == before_id).scalar_subquery()
            stmt = stmt.where(
                sa.or_(_F.scheduled_at < slot, sa.and_(_F.scheduled_at == slot, _F.id < before_id))
            )
        async with self.db.read() as conn:
            rows = (await conn.execute(stmt.limit(limit))).all()
        return [fire_of(r._mapping) for r in rows]

    async def unfinished(self) -> list[FireRecord]:
        async with self.db.read() as conn:
            stmt = sa.select(POLICY_FIRES).where(_F.status == FireStatus.FIRING.value)
            rows = (await conn.execute(stmt.order_by(_F.id))).all()
        return [fire_of(r._mapping) for r in rows]
