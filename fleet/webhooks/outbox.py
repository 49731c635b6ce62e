"""`publish`: put an event in the outbox, in the caller's transaction.

Anything that changes state and should tell receivers calls `publish(conn, type, subject, data,
scope=...)` on the connection of its own write transaction: the outbox rows commit or roll back
with the change, so an event is never sent for a change that did not happen, and never lost for
one that did (a crash after the commit leaves the rows for the relay). One row per subscription
that wants the event (its `events` and `filter`, as they are at that moment). On PostgreSQL each
row is stamped with its transaction's id (`txid_current()`): the relay delivers a subscription's
rows in (txid, id) order and only those of transactions older than every one still open, so a row
that commits late never finds a later transaction's row already sent (`fleet.webhooks.store.heads`).
SQLite has one writer at a time: the id order is the commit order there.

`fleet.subjobs.failed` is batched: while a subscription's batch for the operation has not been
sent (no attempt yet), later failures are added to it; the batch waits `BATCH_WAIT` before its
first attempt so that the failures of one wave travel together.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet.webhooks.events import EventType, Scope, Subscription, jsonable
from fleet.webhooks.tables import WEBHOOK_OUTBOX, WEBHOOKS
from jobs.types import JSONObject

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
BATCH_WAIT = timedelta(seconds=2)
BATCH_CAP = 1000  # servers listed in one fleet.subjobs.failed event (the count goes on)
_O = WEBHOOK_OUTBOX.c


def outbox_insert(conn: AsyncConnection) -> sa.Insert:
    """An insert into the outbox that stamps the writing transaction's id (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return WEBHOOK_OUTBOX.insert().values(txid=sa.func.txid_current())
    return WEBHOOK_OUTBOX.insert()


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


async def subscriptions(conn: AsyncConnection) -> list[Subscription]:
    """The enabled subscriptions (a small table: read whole, in the caller's transaction)."""
    stmt = sa.select(WEBHOOKS.c.id, WEBHOOKS.c.url, WEBHOOKS.c.events, WEBHOOKS.c.filter).where(
        WEBHOOKS.c.enabled.is_(True)
    )
    return [
        Subscription(
            r.id,
            r.url,
            tuple(str(e) for e in r.events),
            {str(k): tuple(str(x) for x in v) for k, v in dict(r.filter).items()},
        )
        for r in (await conn.execute(stmt)).all()
    ]


def _row(
    sub_id: str,
    event_id: str,
    type_: str,
    source: str,
    subject: str,
    data: object,
    now: datetime,
    due: datetime,
) -> dict[str, object]:
    return {
        "subscription_id": sub_id, "event_id": event_id, "type": type_, "source": source,
        "subject": subject[:255], "time": now, "data": jsonable(data), "status": PENDING,
        "attempts": 0, "next_attempt_at": due, "created_at": now,
    }  # fmt: skip


async def publish(
    conn: AsyncConnection,
    type_: EventType | str,
    subject: str,
    data: Mapping[str, object],
    *,
    now: datetime,
    scope: Scope | None = None,
    source: str = "/fleet",
    only: Sequence[Subscription] | None = None,
) -> int:
    """Write the event for every subscription that wants it; returns how many rows.

    `source` and `subject` become the CloudEvent's (the event id is new, shared by the rows);
    `scope` is what subscription filters read; `only`: these subscriptions (already read)."""
    type_ = str(type_)
    subs = await subscriptions(conn) if only is None else only
    wanted = [s for s in subs if s.wants(type_, scope or Scope())]
    if not wanted:
        return 0
    event_id = new_event_id()
    rows = [_row(s.id, event_id, type_, source, subject, data, now, now) for s in wanted]
    await conn.execute(outbox_insert(conn), rows)
    return len(rows)


async def publish_failures(
    conn: AsyncConnection,
    operation_id: str,
    failures: Sequence[Mapping[str, object]],
    operation: Mapping[str, object],
    *,
    now: datetime,
    scope: Scope,
    subs: Sequence[Subscription],
) -> int:
    """`fleet.subjobs.failed` for one operation: added to each subscription's unsent batch, or a
    new batch that waits `BATCH_WAIT` for more."""
    type_ = EventType.SUBJOBS_FAILED.value
    wanted = [s for s in subs if s.wants(type_, scope)]
    event_id = new_event_id()
    for sub in wanted:
        open_batch = (
            await conn.execute(
                sa.select(_O.id, _O.data)
                .where(
                    _O.subscription_id == sub.id,
                    _O.type == type_,
                    _O.subject == operation_id,
                    _O.status == PENDING,
                    _O.attempts == 0,
                )
                .order_by(_O.id.desc())
                .limit(1)
            )
        ).first()
        if open_batch is not None:
            merged = _merge(cast(JSONObject, open_batch.data), failures)
            added = await conn.execute(
                sa.update(WEBHOOK_OUTBOX)
                .where(_O.id == open_batch.id, _O.attempts == 0)
                .values(data=merged)
            )
            if added.rowcount == 1:
                continue  # else the relay took the batch just now: a new one
        data = _merge({**operation, "count": 0, "servers": []}, failures)
        row = _row(
            sub.id, event_id, type_, "/v1/operations", operation_id, data, now, now + BATCH_WAIT
        )
        await conn.execute(outbox_insert(conn), [row])
    return len(wanted)


def _merge(data: Mapping[str, object], failures: Sequence[Mapping[str, object]]) -> JSONObject:
    servers = list(cast(list[object], data.get("servers") or []))
    room = max(0, BATCH_CAP - len(servers))
    servers += [jsonable(f) for f in failures[:room]]
    count = int(cast(int, data.get("count") or 0)) + len(failures)
    return cast(JSONObject, jsonable({**data, "servers": servers, "count": count}))
