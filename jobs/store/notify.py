"""Wake-ups between processes on one PostgreSQL database (``LISTEN``/``NOTIFY``).

Sending: the transaction that makes work appear for other processes (an operation created,
planned, approved, resumed, its failed sub-jobs requeued) also runs ``pg_notify`` on `CHANNEL`,
from `insert_events`, so the word goes out when (and only if) the transaction commits; so does
the planning write that shows more rows of an operation dispatched while it lists (D101), which
tells no event. The payload
names the loops to wake (`PLANNING`: an operation to plan; `DISPATCH`: sub-jobs to send or poll).
PostgreSQL folds identical notifications of one transaction into one.

Receiving: `PgListener` holds one connection of its own (not from the pool) that listens on the
channel and hands each payload to the runtime, which wakes the loops it names. While it listens,
the runtime's loops that found nothing to do sleep `EngineConfig.listen_idle` seconds instead of
their short idle interval. A notification is best-effort: one sent while the connection was
being re-established is lost; the long idle interval is the fallback that finds that work anyway
(as in pgqueuer and procrastinate, which also poll behind their LISTEN), and a listener that has
just (re)connected wakes every loop once. A lost connection is noticed at once (asyncpg's
termination callback) or by a check every `check_every` seconds, and the loops go back to their
short idle interval until it is listening again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = structlog.get_logger("jobs.notify")

CHANNEL = "fleet_jobs"
PLANNING = "planning"
DISPATCH = "dispatch"
EVERY = "all"  # sent by nobody: what a listener hands its runtime when it (re)connects

# the operation events after which another process may find work (jobs.store.base.insert_events)
_TOPICS = {
    "operation.created": PLANNING,
    "operation.planned": DISPATCH,
    "operation.listing_ended": DISPATCH,  # the last rows of one dispatched while listed (D101)
    "operation.approved": DISPATCH,
    "operation.resumed": DISPATCH,
    "operation.retry_requested": DISPATCH,
}


async def notify_for_events(conn: AsyncConnection, rows: Sequence[Mapping[str, object]]) -> None:
    """On PostgreSQL, notify the topics `rows` (event rows) call for, in `conn`'s transaction."""
    if conn.dialect.name != "postgresql":
        return
    topics = {
        _TOPICS[str(r["event"])]
        for r in rows
        if r.get("subjob_id") is None and str(r["event"]) in _TOPICS
    }
    await notify(conn, topics)


async def notify(conn: AsyncConnection, topics: Iterable[str]) -> None:
    """On PostgreSQL, notify `topics` in `conn`'s transaction (sent if and when it commits)."""
    if conn.dialect.name != "postgresql":
        return
    for topic in sorted(set(topics)):
        await conn.execute(sa.select(sa.func.pg_notify(CHANNEL, topic)))


class PgListener:
    """The `jobs.ports.Wakeups` of a PostgreSQL database: see the module docstring."""

    def __init__(self, url: str, *, retry: float = 2.0, check_every: float = 10.0) -> None:
        self.url, self.retry, self.check_every = url, retry, check_every
        self._engine: AsyncEngine | None = None
        self._task: asyncio.Task[None] | None = None
        self._listening = False
        self._lost = asyncio.Event()

    @property
    def listening(self) -> bool:
        return self._listening

    async def start(self, wake: Callable[[str], None]) -> None:
        """Listen in the background from now on; `wake(topic)` for every notification, and
        `wake(EVERY)` once each time the listener (re)connects. Returns once the first attempt
        to connect is over (listening or not)."""
        if self._task is not None:
            raise RuntimeError("the listener is already running")
        self._engine = create_async_engine(self.url, poolclass=NullPool)
        first = asyncio.Event()
        self._task = asyncio.create_task(self._run(wake, first), name="jobs-listener")
        await first.wait()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def _run(self, wake: Callable[[str], None], first: asyncio.Event) -> None:
        while True:
            try:
                await self._listen(wake, first)
            except Exception as exc:  # never let the listener die: the loops fall back to polling
                log.warning("listener_connection_lost", error=str(exc))
            finally:
                self._listening = False
                first.set()
            await asyncio.sleep(self.retry)

    async def _listen(self, wake: Callable[[str], None], first: asyncio.Event) -> None:
        assert self._engine is not None
        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection  # asyncpg's connection

            def received(_conn: object, _pid: int, _channel: str, payload: str) -> None:
                wake(payload)

            self._lost.clear()
            driver.add_termination_listener(lambda _conn: self._lost.set())
            await driver.add_listener(CHANNEL, received)
            self._listening = True
            first.set()
            wake(EVERY)  # whatever appeared while this process was not listening
            log.info("listener_started", channel=CHANNEL)
            while not self._lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._lost.wait(), self.check_every)
                if not self._lost.is_set():
                    await driver.execute("SELECT 1")  # a half-open connection raises here
            raise OSError("the listening connection was closed")
