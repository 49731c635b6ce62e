"""The delivery log's retention (SQLite and PostgreSQL): the relay's lease holder deletes the
delivered and given-up events older than `[webhooks] delivery_log_days` with their attempts; newer
ones, and pending ones of any age, stay."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import sqlalchemy as sa

from fleet.settings import WebhooksSpec
from fleet.webhooks.events import Event
from fleet.webhooks.outbox import publish
from fleet.webhooks.relay import Relay, Sender
from fleet.webhooks.store import Result, WebhookStore
from fleet.webhooks.tables import WEBHOOK_ATTEMPTS, WEBHOOK_OUTBOX
from jobs.clock import FakeClock
from jobs.store.db import Database
from jobs.store.migrate import upgrade

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _event(subject: str, at: datetime) -> Event:
    return Event(f"evt_{subject}", "fleet.webhook.test", "/fleet", subject, at, {})


async def _subjects(db: Database) -> list[str]:
    async with db.read() as conn:
        stmt = sa.select(WEBHOOK_OUTBOX.c.subject).order_by(WEBHOOK_OUTBOX.c.id)
        return [str(s) for s in (await conn.execute(stmt)).scalars()]


async def _attempts(db: Database) -> int:
    async with db.read() as conn:
        stmt = sa.select(sa.func.count()).select_from(WEBHOOK_ATTEMPTS)
        return int((await conn.execute(stmt)).scalar_one())


async def test_old_finished_events_leave_the_log(db_url: str) -> None:
    await asyncio.to_thread(upgrade, db_url)
    db = Database(db_url)
    store = WebhookStore(db)
    values = {
        "url": "http://127.0.0.1:9/hook",
        "events": ["*"],
        "filter": {},
        "secret_ref": "env:X",
    }
    hook = await store.create(values, "t", NOW)
    async with db.write() as conn:  # an event never delivered, kept whatever its age
        await publish(conn, "fleet.operation.created", "old-pending", {}, now=NOW - timedelta(90))
    await store.update(hook.id, {"enabled": False}, NOW)  # nothing is sent in this test
    try:
        for subject, days, ok in (("old-ok", 31, True), ("old-failed", 40, False),
                                  ("new-ok", 29, True), ("new-failed", 1, False)):  # fmt: skip
            at = NOW - timedelta(days=days)
            result = Result(200 if ok else 500, 5, None if ok else "HTTP 500")
            await store.record_test(hook.id, _event(subject, at), result, at)
        assert await _attempts(db) == 4
        clock = FakeClock(NOW)
        async with aiohttp.ClientSession() as session:
            relay = Relay(store, Sender(session, clock, 1.0), clock, "w1", WebhooksSpec())
            assert await relay.run_once() == 0
            assert await _subjects(db) == ["old-pending", "new-ok", "new-failed"]
            assert await _attempts(db) == 2  # the pruned events' attempts went with them
            await clock.advance(timedelta(days=2).total_seconds())
            assert await relay.prune() == 0  # not again before PRUNE_EVERY
            short = Relay(store, Sender(session, clock, 1.0), clock, "w1",
                          WebhooksSpec(delivery_log_days=1))  # fmt: skip
            assert await short.prune() == 2
        assert await _subjects(db) == ["old-pending"]
    finally:
        await db.dispose()


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_the_retention_is_a_whole_number_of_days_of_at_least_one(bad: float) -> None:
    assert WebhooksSpec().delivery_log_days == 30
    with pytest.raises(ValueError, match="delivery_log_days"):
        WebhooksSpec(delivery_log_days=bad)
