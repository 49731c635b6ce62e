"""The relay: one delivery stream across replicas, in order per subscription, at least once.

Every `fleet serve` runs a relay; only the holder of the `webhooks` lease (the engine's named
leases, a row with an expiry: SQLite and PostgreSQL alike) sends. It renews the lease every third
of its length; a replica that died (even by SIGKILL) loses it when it expires, and a standby that
retries as often takes over; a process restarted under the same worker name takes it back at once.

Each round it takes every enabled subscription's oldest pending row that is due and, per
subscription, sends rows one after the other until one fails or none is due (subscriptions in
parallel). An attempt is counted before it is sent (`begin_attempt`) and its result recorded
after: a crash between the two sends the event again with the same id (receivers de-duplicate on
`webhook-id`, the CloudEvent id). A failed attempt waits the next `backoff` step; past the last,
the row is given up (`failed`) and the subscription's next event goes. The holder also trims the
delivery log: delivered and given-up events older than `[webhooks] delivery_log_days` (every
`PRUNE_EVERY` seconds; pending ones stay).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta

import aiohttp
import structlog

from fleet.settings import WebhooksSpec
from fleet.webhooks.events import Event
from fleet.webhooks.records import DeliveryRecord
from fleet.webhooks.signing import SecretError, headers, resolve
from fleet.webhooks.store import Result, WebhookStore
from jobs.clock import Clock
from jobs.store.leases import release_lease, try_lease

log = structlog.get_logger("fleet.webhooks")

LEASE = "webhooks"
PER_ROUND = 100  # events one subscription sends in one round at most
ERROR_TEXT = 500  # characters of an error kept in the log
PRUNE_EVERY = 600.0  # seconds between two trims of the delivery log


class Sender:
    """One signed POST of one event; never raises for the receiver's sake."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        clock: Clock,
        timeout: float,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.session = session
        self.clock = clock
        self.timeout = timeout
        self.environ = environ

    async def send(self, url: str, secret_ref: str, event: Event) -> Result:
        started = time.monotonic()
        try:
            key = resolve(secret_ref, self.environ)
        except SecretError as exc:
            return Result(None, 0, f"secret: {exc}")
        body = event.body()
        stamp = int(self.clock.now().timestamp())
        try:
            async with self.session.post(
                url,
                data=body,
                headers=headers(key, event.id, stamp, body),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as resp:
                await resp.content.read(64 * 1024)
                code = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
            return Result(None, _ms(started), text[:ERROR_TEXT])
        error = None if 200 <= code < 300 else f"HTTP {code}"
        return Result(code, _ms(started), error)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class Relay:
    def __init__(
        self,
        store: WebhookStore,
        sender: Sender,
        clock: Clock,
        owner: str,
        spec: WebhooksSpec,
    ) -> None:
        self.store = store
        self.sender = sender
        self.clock = clock
        self.owner = owner
        self.spec = spec
        self._leading = False
        self._checked = float("-inf")  # monotonic time of the last take or renewal of the lease
        self._pruned = float("-inf")  # monotonic time of the last trim of the delivery log

    async def lead(self) -> bool:
        """Hold (take or renew) the lease, looking at it every third of its length."""
        ttl = self.spec.lease_seconds
        if time.monotonic() - self._checked < ttl / 3:
            return self._leading
        now = self.clock.now()
        held = await try_lease(self.store.db, LEASE, self.owner, now, now + timedelta(seconds=ttl))
        self._checked = time.monotonic()
        if held != self._leading:
            log.info("webhook_relay_lead" if held else "webhook_relay_standby", worker=self.owner)
        self._leading = held
        return held

    async def run_once(self) -> int:
        """One round; returns the attempts made."""
        if not await self.lead():
            return 0
        await self.prune()
        heads = await self.store.heads(self.clock.now())
        if not heads:
            return 0
        counts = await asyncio.gather(*(self._drain(h) for h in heads))
        return sum(counts)

    async def prune(self) -> int:
        """The holder trims the delivery log (`delivery_log_days`), every `PRUNE_EVERY` seconds."""
        if time.monotonic() - self._pruned < PRUNE_EVERY:
            return 0
        self._pruned = time.monotonic()
        before = self.clock.now() - timedelta(days=self.spec.delivery_log_days)
        removed = await self.store.prune(before)
        if removed:
            log.info("webhook_log_pruned", removed=removed, before=before.isoformat())
        return removed

    async def _drain(self, head: DeliveryRecord) -> int:
        sub = await self.store.get(head.subscription_id)
        if sub is None:
            return 0
        made, row = 0, head
        while made < PER_ROUND:
            taken = await self.store.begin_attempt(row.id, self.clock.now())
            if taken is None:
                return made
            result = await self.sender.send(sub.url, sub.secret_ref, taken.event)
            made += 1
            status = await self._record(taken, result)
            if status != "delivered":
                return made
            nxt = await self._next_due(head.subscription_id)
            if nxt is None:
                return made
            row = nxt
        return made

    async def _next_due(self, subscription_id: str) -> DeliveryRecord | None:
        heads = await self.store.heads(self.clock.now())
        return next((h for h in heads if h.subscription_id == subscription_id), None)

    async def _record(self, row: DeliveryRecord, result: Result) -> str:
        now = self.clock.now()
        steps = self.spec.backoff
        retry_at = None
        if row.attempts <= len(steps):
            retry_at = now + timedelta(seconds=steps[row.attempts - 1])
        status = await self.store.finish_attempt(row, result, now, retry_at)
        log.info(
            "webhook_delivered" if result.ok else "webhook_attempt_failed",
            subscription=row.subscription_id,
            event_id=row.event.id,
            type=row.event.type,
            attempt=row.attempts,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            status=status,
        )
        return status

    async def run(self) -> None:
        """Rounds until cancelled; a failing round (database away) is logged and retried."""
        try:
            while True:
                try:
                    busy = await self.run_once()
                except Exception:
                    log.exception("webhook_relay_round_failed")
                    busy = 0
                if not busy:
                    await asyncio.sleep(self.spec.poll_interval)
        finally:
            if self._leading:
                with contextlib.suppress(Exception):
                    await release_lease(self.store.db, LEASE, self.owner)


@contextlib.asynccontextmanager
async def running_relay(
    store: WebhookStore, clock: Clock, owner: str, spec: WebhooksSpec
) -> AsyncIterator[Sender]:
    """The relay of this process, running in the background while the context is open (not when
    `spec.enabled` is false); yields its sender (the API's test sends use it too)."""
    async with aiohttp.ClientSession() as session:
        sender = Sender(session, clock, spec.timeout, os.environ)
        task = None
        if spec.enabled:
            task = asyncio.create_task(Relay(store, sender, clock, owner, spec).run())
        try:
            yield sender
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
