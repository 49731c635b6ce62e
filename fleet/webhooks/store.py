"""All of the webhook package's SQL (SQLAlchemy Core), on SQLite or PostgreSQL: subscriptions,
the delivery log, and what the relay needs (the head of each subscription's queue, the
write-ahead of an attempt, its result). Shares the engine's `Database`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet.webhooks.events import Event
from fleet.webhooks.outbox import DELIVERED, FAILED, PENDING, outbox_insert
from fleet.webhooks.records import AttemptRecord, DeliveryRecord, WebhookRecord, event_of
from fleet.webhooks.tables import WEBHOOK_ATTEMPTS, WEBHOOK_OUTBOX, WEBHOOKS
from jobs.store.db import Database

_W, _O, _A = WEBHOOKS.c, WEBHOOK_OUTBOX.c, WEBHOOK_ATTEMPTS.c
LOG_ATTEMPTS = 20  # attempts shown per delivery (the latest)
PRUNE_CHUNK = 1000  # delivery log rows deleted in one transaction


def _webhook(m: RowMapping) -> WebhookRecord:
    return WebhookRecord(
        id=m["id"],
        url=m["url"],
        events=tuple(str(e) for e in m["events"]),
        filter={str(k): tuple(str(x) for x in v) for k, v in dict(m["filter"]).items()},
        secret_ref=m["secret_ref"],
        description=m["description"],
        enabled=m["enabled"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        created_by=m["created_by"],
    )


def _delivery(m: RowMapping, log: Sequence[AttemptRecord] = ()) -> DeliveryRecord:
    return DeliveryRecord(
        id=m["id"],
        subscription_id=m["subscription_id"],
        event=event_of(m),
        status=m["status"],
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        last_attempt_at=m["last_attempt_at"],
        delivered_at=m["delivered_at"],
        status_code=m["status_code"],
        latency_ms=m["latency_ms"],
        error=m["error"],
        created_at=m["created_at"],
        log=tuple(log),
    )


@dataclass(frozen=True)
class Result:
    """What one attempt gave: an HTTP status (None: no answer) and how long it took."""

    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- subscriptions --------------------------------------------------------------------------

    async def create(self, values: Mapping[str, object], by: str, now: datetime) -> WebhookRecord:
        row = {
            "id": uuid.uuid4().hex, "description": "", "enabled": True, **values,
            "created_at": now, "updated_at": now, "created_by": by,
        }  # fmt: skip
        async with self.db.write() as conn:
            await conn.execute(WEBHOOKS.insert().values(**row))
        stored = await self.get(str(row["id"]))
        assert stored is not None
        return stored

    async def list_webhooks(self) -> list[WebhookRecord]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(WEBHOOKS).order_by(_W.created_at, _W.id))).all()
        return [_webhook(r._mapping) for r in rows]

    async def get(self, webhook_id: str) -> WebhookRecord | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(WEBHOOKS).where(_W.id == webhook_id))).first()
        return None if row is None else _webhook(row._mapping)

    async def update(
        self, webhook_id: str, values: Mapping[str, object], now: datetime
    ) -> WebhookRecord | None:
        async with self.db.write() as conn:
            await conn.execute(
                sa.update(WEBHOOKS).where(_W.id == webhook_id).values(**values, updated_at=now)
            )
        return await self.get(webhook_id)

    async def delete(self, webhook_id: str) -> bool:
        """Delete the subscription with its outbox rows (undelivered events are dropped)."""
        async with self.db.write() as conn:
            await conn.execute(sa.delete(WEBHOOK_OUTBOX).where(_O.subscription_id == webhook_id))
            result = await conn.execute(sa.delete(WEBHOOKS).where(_W.id == webhook_id))
        return bool(result.rowcount)

    # --- the delivery log -----------------------------------------------------------------------

    async def deliveries(
        self, webhook_id: str, limit: int, before: int | None = None, status: str | None = None
    ) -> list[DeliveryRecord]:
        """Newest first, each with its latest attempts."""
        stmt = sa.select(WEBHOOK_OUTBOX).where(_O.subscription_id == webhook_id)
        if before is not None:
            stmt = stmt.where(_O.id < before)
        if status is not None:
            stmt = stmt.where(_O.status == status)
        async with self.db.read() as conn:
            rows = (await conn.execute(stmt.order_by(_O.id.desc()).limit(limit))).all()
            logs = await self._attempts(conn, [r.id for r in rows])
        return [_delivery(r._mapping, logs.get(r.id, ())) for r in rows]

    async def delivery(self, delivery_id: int) -> DeliveryRecord | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(sa.select(WEBHOOK_OUTBOX).where(_O.id == delivery_id))
            ).first()
            logs = await self._attempts(conn, [delivery_id])
        return None if row is None else _delivery(row._mapping, logs.get(delivery_id, ()))

    @staticmethod
    async def _attempts(
        conn: AsyncConnection, ids: Sequence[int]
    ) -> dict[int, list[AttemptRecord]]:
        out: dict[int, list[AttemptRecord]] = {}
        if not ids:
            return out
        stmt = sa.select(WEBHOOK_ATTEMPTS).where(_A.delivery_id.in_(list(ids))).order_by(_A.id)
        for r in (await conn.execute(stmt)).all():
            rec = AttemptRecord(r.attempt, r.at, r.status_code, r.latency_ms, r.error)
            out.setdefault(r.delivery_id, []).append(rec)
        return {k: v[-LOG_ATTEMPTS:] for k, v in out.items()}

    async def prune(self, before: datetime, chunk: int = PRUNE_CHUNK) -> int:
        """Delete delivered and given-up events created before `before` (their attempts go with
        them), `chunk` rows per transaction; pending events stay whatever their age."""
        done = 0
        while True:
            old = (
                sa.select(_O.id)
                .where(_O.status.in_((DELIVERED, FAILED)), _O.created_at < before)
                .limit(chunk)
            )
            async with self.db.write() as conn:
                ids = [int(i) for i in (await conn.execute(old)).scalars()]
                if ids:
                    await conn.execute(sa.delete(WEBHOOK_OUTBOX).where(_O.id.in_(ids)))
            done += len(ids)
            if len(ids) < chunk:
                return done

    # --- the relay ------------------------------------------------------------------------------

    async def heads(self, now: datetime) -> list[DeliveryRecord]:
        """Each enabled subscription's oldest pending row, when it is due (a subscription whose
        oldest row waits for its retry waits whole: its events go in order).

        Oldest is by (txid, id) on PostgreSQL, among the rows of transactions older than the
        oldest one still open (`txid_snapshot_xmin`): a transaction that began earlier but
        commits later can still add rows that come first, so nothing of a later transaction is
        sent before it ends. On SQLite (one writer) it is by id."""
        pending = _O.status == PENDING
        order: tuple[sa.ColumnElement[object], ...] = (_O.id,)
        if self.db.is_postgres:
            xmin = sa.func.txid_snapshot_xmin(sa.func.txid_current_snapshot())
            pending = sa.and_(pending, sa.or_(_O.txid.is_(None), _O.txid < xmin))
            order = (_O.txid, _O.id)
        rank = sa.func.row_number().over(partition_by=_O.subscription_id, order_by=order)
        first = sa.select(_O.id, rank.label("rank")).where(pending).subquery()
        stmt = (
            sa.select(WEBHOOK_OUTBOX)
            .join(first, first.c.id == _O.id)
            .join(WEBHOOKS, _W.id == _O.subscription_id)
            .where(first.c.rank == 1, _O.next_attempt_at <= now, _W.enabled.is_(True))
            .order_by(*order)
        )
        async with self.db.read() as conn:
            return [_delivery(r._mapping) for r in (await conn.execute(stmt)).all()]

    async def begin_attempt(self, delivery_id: int, now: datetime) -> DeliveryRecord | None:
        """Count the attempt before it is made (write-ahead): from here the event is no longer
        an open batch, and a crash shows as an attempt without a result. Returns the row as it
        stands (its final data), or None if it is no longer pending."""
        async with self.db.write() as conn:
            done = await conn.execute(
                sa.update(WEBHOOK_OUTBOX)
                .where(_O.id == delivery_id, _O.status == PENDING)
                .values(attempts=_O.attempts + 1, last_attempt_at=now)
            )
            if done.rowcount != 1:
                return None
            row = (await conn.execute(sa.select(WEBHOOK_OUTBOX).where(_O.id == delivery_id))).one()
        return _delivery(row._mapping)

    async def finish_attempt(
        self, row: DeliveryRecord, result: Result, now: datetime, retry_at: datetime | None
    ) -> str:
        """Record the attempt; the row is delivered, retried at `retry_at`, or given up (None)."""
        status = DELIVERED if result.ok else (PENDING if retry_at is not None else FAILED)
        values: dict[str, object] = {
            "status": status, "status_code": result.status_code,
            "latency_ms": result.latency_ms, "error": result.error,
        }  # fmt: skip
        if result.ok:
            values["delivered_at"] = now
        elif retry_at is not None:
            values["next_attempt_at"] = retry_at
        async with self.db.write() as conn:
            done = await conn.execute(
                sa.update(WEBHOOK_OUTBOX).where(_O.id == row.id).values(**values)
            )
            if done.rowcount != 1:
                return status  # the subscription was deleted meanwhile: nothing to record
            await conn.execute(
                WEBHOOK_ATTEMPTS.insert().values(
                    delivery_id=row.id, attempt=row.attempts, at=now,
                    status_code=result.status_code, latency_ms=result.latency_ms,
                    error=result.error,
                )
            )  # fmt: skip
        return status

    async def record_test(
        self, webhook_id: str, event: Event, result: Result, now: datetime
    ) -> DeliveryRecord:
        """A test send, made at once by the API, kept in the log like any delivery."""
        values = {
            "subscription_id": webhook_id, "event_id": event.id, "type": event.type,
            "source": event.source, "subject": event.subject, "time": event.time,
            "data": dict(event.data), "status": DELIVERED if result.ok else FAILED,
            "attempts": 1, "next_attempt_at": now, "last_attempt_at": now,
            "delivered_at": now if result.ok else None, "status_code": result.status_code,
            "latency_ms": result.latency_ms, "error": result.error, "created_at": now,
        }  # fmt: skip
        async with self.db.write() as conn:
            stmt = outbox_insert(conn).values(**values).returning(_O.id)
            inserted = await conn.execute(stmt)
            new_id = int(inserted.scalar_one())
            await conn.execute(
                WEBHOOK_ATTEMPTS.insert().values(
                    delivery_id=new_id, attempt=1, at=now, status_code=result.status_code,
                    latency_ms=result.latency_ms, error=result.error,
                )
            )  # fmt: skip
        found = await self.delivery(new_id)
        assert found is not None
        return found
