"""Per-subscription order across concurrent transactions on PostgreSQL: a transaction that wrote
its outbox row first but commits last is not overtaken by a later transaction's row (the relay
waits for it, then sends both in transaction order)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp
from sqlalchemy.ext.asyncio import create_async_engine

from fleet.settings import WebhooksSpec
from fleet.webhooks.outbox import publish
from fleet.webhooks.relay import Relay, Sender
from fleet.webhooks.store import WebhookStore
from jobs.clock import SystemClock
from jobs.store.db import Database
from jobs.store.migrate import upgrade
from tests.webhook_receiver import SECRET, Receiver

TYPE = "fleet.operation.created"


async def test_a_row_committed_late_by_an_earlier_transaction_is_not_overtaken(
    pg_url: str,
) -> None:
    await asyncio.to_thread(upgrade, pg_url)
    db, other = Database(pg_url), create_async_engine(pg_url)
    receiver = Receiver()
    url = await receiver.start()
    clock = SystemClock()
    store = WebhookStore(db)
    values = {"url": url, "events": ["*"], "filter": {}, "secret_ref": "env:FLEET_ORDER_WHSEC"}
    await store.create(values, "t", clock.now())
    try:
        async with aiohttp.ClientSession() as session:
            sender = Sender(session, clock, 5.0, {"FLEET_ORDER_WHSEC": SECRET})
            relay = Relay(store, sender, clock, "w1", WebhooksSpec())
            async with other.connect() as conn:
                early = await conn.begin()  # writes its event first, commits last
                await publish(conn, TYPE, "first", {"n": 1}, now=datetime.now(UTC))
                async with db.write() as later:
                    await publish(later, TYPE, "second", {"n": 2}, now=datetime.now(UTC))
                assert await relay.run_once() == 0  # "second" waits for the open transaction
                assert receiver.got == []
                await early.commit()
            assert await relay.run_once() == 2
        assert [g.event["subject"] for g in receiver.got] == ["first", "second"]
    finally:
        await receiver.stop()
        await other.dispose()
        await db.dispose()
