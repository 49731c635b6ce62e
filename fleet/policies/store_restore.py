"""Restore bookkeeping (part of the policy store): which stop fires are there to restore, what
each stopped (`policy_fire_servers`), and which restore fire took which stop fire."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from fleet.policies.records import FireRecord, FireStatus, HarvestedServer, Trigger
from fleet.policies.tables import POLICY_FIRE_SERVERS, POLICY_FIRES
from jobs.store.db import Database
from jobs.types import JSONMapping

_F = POLICY_FIRES.c
CHUNK = 1000


def fire_of(m: RowMapping) -> FireRecord:
    return FireRecord(
        id=m["id"],
        policy_id=m["policy_id"],
        scheduled_at=m["scheduled_at"],
        trigger=Trigger(m["trigger"]),
        status=FireStatus(m["status"]),
        reason=m["reason"],
        operation_id=m["operation_id"],
        idempotency_key=m["idempotency_key"],
        dry_run=m["dry_run"],
        targets=m["targets"],
        request=cast(JSONMapping | None, m["request"]),
        details=cast(JSONMapping, m["details"] or {}),
        worker=m["worker"],
        by=m["by"],
        claimed_at=m["claimed_at"],
        finished_at=m["finished_at"],
        harvested_at=m["harvested_at"],
        consumed_by=m["consumed_by"],
    )


class RestoreRecords:
    db: Database

    async def stop_fires(
        self,
        policy_id: str,
        start: datetime,
        end: datetime,
        *,
        unharvested: bool = False,
        consumable_by: int | None = None,
    ) -> list[FireRecord]:
        """Real (not dry-run) fired slots of `policy_id` with start <= slot < end: those not yet
        harvested, or those no restore consumed yet (or consumed by `consumable_by` itself)."""
        stmt = sa.select(POLICY_FIRES).where(
            _F.policy_id == policy_id,
            _F.status == FireStatus.FIRED.value,
            _F.dry_run.is_(False),
            _F.scheduled_at >= start,
            _F.scheduled_at < end,
        )
        if unharvested:
            stmt = stmt.where(_F.harvested_at.is_(None))
        else:
            free = _F.consumed_by.is_(None)
            stmt = stmt.where(
                free if consumable_by is None else sa.or_(free, _F.consumed_by == consumable_by)
            )
        async with self.db.read() as conn:
            rows = (await conn.execute(stmt.order_by(_F.scheduled_at))).all()
        return [fire_of(r._mapping) for r in rows]

    async def save_harvest(
        self, fire_id: int, servers: Iterable[HarvestedServer], now: datetime
    ) -> bool:
        """Record what a stop fire stopped, once (False if it was recorded already)."""
        rows = [
            {"fire_id": fire_id, "endpoint": s.endpoint, "server_id": s.server_id,
             "status": s.status, "updated": s.updated}
            for s in servers
        ]  # fmt: skip
        async with self.db.write() as conn:
            result = await conn.execute(
                sa.update(POLICY_FIRES)
                .where(_F.id == fire_id, _F.harvested_at.is_(None))
                .values(harvested_at=now)
            )
            if not result.rowcount:
                return False
            for i in range(0, len(rows), CHUNK):
                await conn.execute(POLICY_FIRE_SERVERS.insert(), rows[i : i + CHUNK])
        return True

    async def harvested(self, fire_ids: Sequence[int]) -> dict[int, list[HarvestedServer]]:
        out: dict[int, list[HarvestedServer]] = {i: [] for i in fire_ids}
        if not fire_ids:
            return out
        t = POLICY_FIRE_SERVERS.c
        stmt = sa.select(POLICY_FIRE_SERVERS).where(t.fire_id.in_(list(fire_ids)))
        async with self.db.read() as conn:
            for r in (await conn.execute(stmt)).all():
                m = r._mapping
                out[m["fire_id"]].append(
                    HarvestedServer(m["endpoint"], m["server_id"], m["status"], m["updated"])
                )
        return out

    async def consume(self, fire_ids: Sequence[int], by_fire: int) -> None:
        """Mark stop fires as restored by `by_fire` (each stop fire is restored at most once)."""
        if not fire_ids:
            return
        async with self.db.write() as conn:
            await conn.execute(
                sa.update(POLICY_FIRES)
                .where(_F.id.in_(list(fire_ids)), _F.consumed_by.is_(None))
                .values(consumed_by=by_fire)
            )
