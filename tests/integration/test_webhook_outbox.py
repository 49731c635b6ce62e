"""The webhook outbox is written in the transaction of the change it tells of (on SQLite and
PostgreSQL): a write that rolls back leaves neither the change nor its event; failed sub-jobs
are gathered into the subscription's unsent batch, and a batch that has been tried is never
changed (later failures start a new one)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet.webhooks import on_engine_events
from fleet.webhooks.events import Scope
from fleet.webhooks.outbox import publish_failures, subscriptions
from fleet.webhooks.store import Result, WebhookStore
from fleet.webhooks.tables import WEBHOOK_OUTBOX
from jobs.records import NewOperation
from jobs.store import SqlJobStore
from jobs.store.migrate import upgrade
from jobs.store.models import OPERATIONS


class Boom(Exception):
    pass


async def _rows(store: SqlJobStore) -> list[sa.Row[tuple[object, ...]]]:
    async with store.db.read() as conn:
        stmt = sa.select(WEBHOOK_OUTBOX).order_by(WEBHOOK_OUTBOX.c.id)
        return list((await conn.execute(stmt)).all())


async def _store(db_url: str) -> tuple[SqlJobStore, WebhookStore]:
    await asyncio.to_thread(upgrade, db_url)
    store = SqlJobStore(db_url)
    store.db.listen(on_engine_events)
    hooks = WebhookStore(store.db)
    values = {
        "url": "http://127.0.0.1:9/hook",
        "events": ["*"],
        "filter": {},
        "secret_ref": "env:X",
    }
    await hooks.create(values, "t", datetime.now(UTC))
    return store, hooks


async def test_a_rolled_back_change_leaves_no_event(db_url: str) -> None:
    store, _ = await _store(db_url)
    failing = False

    async def after(conn: AsyncConnection, rows: Sequence[Mapping[str, object]]) -> None:
        if failing:
            raise Boom  # the engine's write fails after the outbox rows were written

    store.db.listen(after)
    try:
        failing = True
        with pytest.raises(Boom):
            await store.create_operation(
                NewOperation(kind="stop", created_by="t"), datetime.now(UTC)
            )
        assert await _rows(store) == []
        async with store.db.read() as conn:
            assert (
                await conn.execute(sa.select(sa.func.count()).select_from(OPERATIONS))
            ).scalar() == 0
        failing = False
        op, _ = await store.create_operation(
            NewOperation(kind="stop", created_by="t"), datetime.now(UTC)
        )
        [row] = await _rows(store)
        assert (row.type, row.subject, row.status) == ("fleet.operation.created", op.id, "pending")
    finally:
        await store.close()


async def test_failures_are_batched_until_the_batch_is_tried(db_url: str) -> None:
    store, hooks = await _store(db_url)
    now = datetime.now(UTC)
    op = {"operation_id": "op1"}

    async def fail(*servers: str) -> None:
        async with store.db.write() as conn:
            subs = await subscriptions(conn)
            failures = [{"server_id": s} for s in servers]
            await publish_failures(conn, "op1", failures, op, now=now, scope=Scope(), subs=subs)

    try:
        await fail("a", "b")
        await fail("c")
        [batch] = await _rows(store)
        assert batch.data["count"] == 3  # type: ignore[index]
        assert [s["server_id"] for s in batch.data["servers"]] == ["a", "b", "c"]  # type: ignore[index]
        assert batch.next_attempt_at > now  # waits for more
        taken = await hooks.begin_attempt(int(batch.id), now)  # type: ignore[call-overload]
        assert taken is not None and taken.attempts == 1
        await fail("d")
        first, second = await _rows(store)
        assert first.data["count"] == 3  # type: ignore[index]
        assert second.data["count"] == 1 and second.event_id != first.event_id  # type: ignore[index]
    finally:
        await store.close()


async def test_an_attempt_whose_subscription_was_deleted_meanwhile_is_dropped(db_url: str) -> None:
    store, hooks = await _store(db_url)
    try:
        await store.create_operation(NewOperation(kind="stop", created_by="t"), datetime.now(UTC))
        [row] = await _rows(store)
        taken = await hooks.begin_attempt(int(row.id), datetime.now(UTC))  # type: ignore[call-overload]
        assert taken is not None
        await hooks.delete(taken.subscription_id)  # while the request is out
        result = Result(200, 5, None)
        assert await hooks.finish_attempt(taken, result, datetime.now(UTC), None) == "delivered"
        assert await _rows(store) == []
    finally:
        await store.close()
