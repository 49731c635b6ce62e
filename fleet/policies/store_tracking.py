"""The SQL of tracking (SQLAlchemy Core): stop spans, drift records and the follower's watermark
(`fleet.policies.tables_tracking`). It shares the engine's `jobs.store.db.Database`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet.policies import notify
from fleet.policies.tables import POLICY_FIRES
from fleet.policies.tables_tracking import DRIFT_RECORDS, STOP_SPANS, TRACKING_STATE
from jobs.store.db import Database
from jobs.types import JSONObject

_S = STOP_SPANS.c
_D = DRIFT_RECORDS.c
_T = TRACKING_STATE.c
FOLLOWER = "operations"


@dataclass(frozen=True)
class Origin:
    """Who asked for a server's state: an operation, and the policy fire that created it."""

    operation_id: str
    policy_id: str | None = None
    fire_id: int | None = None


@dataclass(frozen=True)
class StopSpan:
    """A server fleet stopped, from when its stop succeeded until it was started again (open:
    `ended_at` None). `end_source`: `fleet` (fleet's own start), `instance_action` (the cloud's
    record of a start by anyone else), `status_read` (the first read showing it running: the
    true end is earlier, so the span is an upper bound), `gone` (no longer listed)."""

    id: int
    endpoint: str
    server_id: str
    flavor: str | None
    origin: Origin
    stopped_at: datetime
    ended_at: datetime | None
    end_source: str | None
    end_detail: str | None
    checked_at: datetime | None

    @property
    def bound(self) -> bool:
        return self.end_source in ("status_read", "gone")


@dataclass(frozen=True)
class NewDrift:
    endpoint: str
    server_id: str
    origin: Origin
    kind: str  # not_reached | left
    desired: str
    observed: str
    detail: str
    changed_at: datetime | None = None


@dataclass(frozen=True)
class DriftRecord:
    id: int
    drift: NewDrift
    detected_at: datetime
    enforcement: str | None  # enforced | refused | skipped (None: the policy does not enforce)
    enforce_operation_id: str | None
    enforce_reason: str | None
    enforced_at: datetime | None

    def to_json(self) -> JSONObject:
        d, o = self.drift, self.drift.origin
        stamp = None if d.changed_at is None else d.changed_at.isoformat()
        done = None if self.enforced_at is None else self.enforced_at.isoformat()
        return {
            "id": self.id, "endpoint": d.endpoint, "server_id": d.server_id, "kind": d.kind,
            "desired": d.desired, "observed": d.observed, "detail": d.detail,
            "operation_id": o.operation_id, "policy": o.policy_id, "fire_id": o.fire_id,
            "changed_at": stamp, "detected_at": self.detected_at.isoformat(),
            "enforcement": self.enforcement, "enforce_operation_id": self.enforce_operation_id,
            "enforce_reason": self.enforce_reason, "enforced_at": done,
        }  # fmt: skip


def _span(m: RowMapping) -> StopSpan:
    return StopSpan(
        id=m["id"], endpoint=m["endpoint"], server_id=m["server_id"], flavor=m["flavor"],
        origin=Origin(m["operation_id"], m["policy_id"], m["fire_id"]),
        stopped_at=m["stopped_at"], ended_at=m["ended_at"], end_source=m["end_source"],
        end_detail=m["end_detail"], checked_at=m["checked_at"],
    )  # fmt: skip


def _drift(m: RowMapping) -> DriftRecord:
    new = NewDrift(
        m["endpoint"], m["server_id"], Origin(m["operation_id"], m["policy_id"], m["fire_id"]),
        m["kind"], m["desired"], m["observed"], m["detail"], m["changed_at"],
    )  # fmt: skip
    return DriftRecord(
        m["id"], new, m["detected_at"], m["enforcement"], m["enforce_operation_id"],
        m["enforce_reason"], m["enforced_at"],
    )  # fmt: skip


class TrackingStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- the follower's watermark -----------------------------------------------------------------

    async def watermark(self) -> tuple[tuple[datetime, str] | None, datetime | None]:
        """(the last finished operation followed, as its keyset; the last check of the servers)."""
        stmt = sa.select(TRACKING_STATE).where(_T.name == FOLLOWER)
        async with self.db.read() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            return None, None
        m = row._mapping
        mark = None if m["finished_at"] is None else (m["finished_at"], m["operation_id"])
        return mark, m["checked_at"]

    async def _set_state(self, **values: object) -> None:
        async with self.db.write() as conn:
            done = await conn.execute(
                sa.update(TRACKING_STATE).where(_T.name == FOLLOWER).values(**values)
            )
            if not done.rowcount:
                await conn.execute(TRACKING_STATE.insert().values(name=FOLLOWER, **values))

    async def set_watermark(self, finished_at: datetime, operation_id: str) -> None:
        await self._set_state(finished_at=finished_at, operation_id=operation_id)

    async def set_checked(self, now: datetime) -> None:
        await self._set_state(checked_at=now)

    async def origin_of(self, operation_id: str) -> Origin:
        """The policy fire that created the operation, or the drift an enforcing operation
        answered (its policy and slot); else the operation alone."""
        f = POLICY_FIRES.c
        fire = sa.select(f.policy_id, f.id).where(f.operation_id == operation_id)
        enforced = sa.select(_D.policy_id, _D.fire_id).where(
            _D.enforce_operation_id == operation_id
        )
        async with self.db.read() as conn:
            row = (await conn.execute(fire)).first() or (await conn.execute(enforced)).first()
        if row is None:
            return Origin(operation_id)
        return Origin(operation_id, row[0], row[1])

    # --- stop spans ---------------------------------------------------------------------------------

    async def open_spans(
        self,
        origin: Origin,
        stops: Sequence[tuple[str, str, str | None, datetime]],
        running_at: datetime,
    ) -> int:
        """One span per (endpoint, server id, flavor, stopped at) the operation stopped (again:
        nothing new). The operation found these servers running by `running_at` (its planning):
        a span of theirs still open (started by someone and not seen yet) ends there, a bound."""
        if not stops:
            return 0
        have = sa.select(_S.endpoint, _S.server_id).where(_S.operation_id == origin.operation_id)
        async with self.db.write() as conn:
            await self._supersede(conn, [(e, s) for e, s, _, _ in stops], origin, running_at)
            known = {(r[0], r[1]) for r in (await conn.execute(have)).all()}
            rows = [
                {"endpoint": e, "server_id": s, "flavor": fl, "stopped_at": at,
                 "operation_id": origin.operation_id, "policy_id": origin.policy_id,
                 "fire_id": origin.fire_id}
                for e, s, fl, at in stops if (e, s) not in known
            ]  # fmt: skip
            if rows:
                await conn.execute(STOP_SPANS.insert(), rows)
        return len(rows)

    @staticmethod
    async def _supersede(
        conn: AsyncConnection, servers: list[tuple[str, str]], origin: Origin, at: datetime
    ) -> None:
        detail = f"found running by operation {origin.operation_id}, which stopped it again"
        for i in range(0, len(servers), 500):
            chunk = servers[i : i + 500]
            await conn.execute(
                sa.update(STOP_SPANS)
                .where(
                    sa.tuple_(_S.endpoint, _S.server_id).in_(chunk),
                    _S.ended_at.is_(None),
                    _S.operation_id != origin.operation_id,
                    _S.stopped_at <= at,
                )
                .values(ended_at=at, end_source="status_read", end_detail=detail)
            )

    async def close_open(
        self, endpoint: str, server_id: str, at: datetime, source: str, detail: str
    ) -> list[StopSpan]:
        """End the server's open spans that began before `at`; returns them as they were."""
        where = (
            _S.endpoint == endpoint, _S.server_id == server_id,
            _S.ended_at.is_(None), _S.stopped_at <= at,
        )  # fmt: skip
        async with self.db.write() as conn:
            rows = (await conn.execute(sa.select(STOP_SPANS).where(*where))).all()
            if rows:
                await conn.execute(
                    sa.update(STOP_SPANS)
                    .where(*where)
                    .values(ended_at=at, end_source=source, end_detail=detail)
                )
        return [_span(r._mapping) for r in rows]

    async def unended(self) -> list[StopSpan]:
        stmt = sa.select(STOP_SPANS).where(_S.ended_at.is_(None)).order_by(_S.id)
        async with self.db.read() as conn:
            return [_span(r._mapping) for r in (await conn.execute(stmt)).all()]

    async def touch(self, span_ids: Sequence[int], now: datetime) -> None:
        """The servers of these spans were read stopped at `now`."""
        async with self.db.write() as conn:
            for i in range(0, len(span_ids), 1000):
                chunk = list(span_ids[i : i + 1000])
                await conn.execute(
                    sa.update(STOP_SPANS).where(_S.id.in_(chunk)).values(checked_at=now)
                )

    async def spans_between(self, start: datetime, end: datetime) -> list[StopSpan]:
        """Spans that overlap [start, end)."""
        stmt = sa.select(STOP_SPANS).where(
            _S.stopped_at < end, sa.or_(_S.ended_at.is_(None), _S.ended_at > start)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(stmt.order_by(_S.stopped_at, _S.id))).all()
        return [_span(r._mapping) for r in rows]

    # --- drift --------------------------------------------------------------------------------------

    async def insert_drift(self, new: NewDrift, now: datetime) -> DriftRecord | None:
        """Store a drift once per (operation, server, kind): None if it was known."""
        o = new.origin
        values = {
            "endpoint": new.endpoint, "server_id": new.server_id, "operation_id": o.operation_id,
            "policy_id": o.policy_id, "fire_id": o.fire_id, "kind": new.kind,
            "desired": new.desired, "observed": new.observed, "detail": new.detail,
            "changed_at": new.changed_at, "detected_at": now,
        }  # fmt: skip
        try:
            async with self.db.write() as conn:
                result = await conn.execute(DRIFT_RECORDS.insert().values(**values))
                drift_id = int(result.inserted_primary_key[0])  # type: ignore[index]
                await notify.drift_detected(conn, drift_id, values)  # webhooks, same transaction
        except IntegrityError:
            return None
        return DriftRecord(drift_id, new, now, None, None, None, None)

    async def enforced_before(self, fire_id: int, endpoint: str, server_id: str) -> bool:
        """Whether a drift of this server from this slot was enforced already."""
        stmt = sa.select(sa.func.count()).where(
            _D.fire_id == fire_id, _D.endpoint == endpoint, _D.server_id == server_id,
            _D.enforcement == "enforced",
        )  # fmt: skip
        async with self.db.read() as conn:
            return bool((await conn.execute(stmt)).scalar_one())

    async def set_enforcement(
        self, drift_id: int, enforcement: str, operation_id: str | None, reason: str, now: datetime
    ) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                sa.update(DRIFT_RECORDS)
                .where(_D.id == drift_id)
                .values(
                    enforcement=enforcement,
                    enforce_operation_id=operation_id,
                    enforce_reason=reason,
                    enforced_at=now,
                )
            )

    async def list_drift(
        self,
        *,
        since: datetime | None = None,
        policy: str | None = None,
        endpoint: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[DriftRecord]:
        """Newest first (`before`: a drift id from the previous page)."""
        stmt = sa.select(DRIFT_RECORDS)
        if since is not None:
            stmt = stmt.where(_D.detected_at >= since)
        if policy is not None:
            stmt = stmt.where(_D.policy_id == policy)
        if endpoint is not None:
            stmt = stmt.where(_D.endpoint == endpoint)
        if before is not None:
            stmt = stmt.where(_D.id < before)
        stmt = stmt.order_by(_D.id.desc()).limit(max(1, limit))
        async with self.db.read() as conn:
            return [_drift(r._mapping) for r in (await conn.execute(stmt)).all()]
