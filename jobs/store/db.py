"""The async engine and its transactions, for SQLite (embedded default) and PostgreSQL.

SQLite: WAL and a busy timeout on every connection, foreign keys on, and the driver's own
transaction handling switched off (`isolation_level = None`) so that every write transaction starts
with ``BEGIN IMMEDIATE``: the write lock is taken before the first read, which makes
read-then-write atomic across processes (without it, two processes incrementing the same row lost
updates silently). Writers inside one process also queue in the process (`jobs.priority`), so they
wait their turn instead of spinning in SQLite's busy handler: the engine's first, an API
request's after them, FIFO within each. Reads use a plain deferred ``BEGIN`` and run
concurrently with the writer (WAL).

PostgreSQL: READ COMMITTED (reads outside a snapshot in autocommit: the same visibility, one
round trip), claims with ``FOR UPDATE SKIP LOCKED``, and writes that touch an
operation lock its row first (in id order), which serialises the error-budget arithmetic per
operation and keeps lock order consistent (no deadlocks between loops). A pooled connection is
checked with one `SELECT 1` when it is taken from the pool (`_check_connection`).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import await_

from jobs.priority import WriterQueue
from jobs.store.models import OPERATIONS

SQLITE_BUSY_TIMEOUT_MS = 30_000
_READ_OPTION = "jobs_read_only"

EventListener = Callable[[AsyncConnection, Sequence[Mapping[str, object]]], Awaitable[None]]
"""Called with the event rows the store has just appended, on the connection (so in the very
transaction) that wrote them: what it writes commits or rolls back with the events."""

_LISTENERS: weakref.WeakKeyDictionary[sa.Engine, list[EventListener]] = weakref.WeakKeyDictionary()


def event_listeners(conn: AsyncConnection) -> Sequence[EventListener]:
    """The listeners of the database `conn` belongs to (see `Database.listen`)."""
    return _LISTENERS.get(conn.sync_engine, ())


class _DBAPIConnection(Protocol):
    isolation_level: str | None

    def cursor(self) -> _DBAPICursor: ...


class _DBAPICursor(Protocol):
    def execute(self, sql: str) -> object: ...

    def close(self) -> None: ...


def _sqlite_connect(dbapi_connection: _DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        "PRAGMA synchronous=NORMAL",  # WAL + NORMAL survives a process crash (kill -9)
        "PRAGMA foreign_keys=ON",
    ):
        cursor.execute(pragma)
    cursor.close()


class _AsyncpgConnection(Protocol):
    async def execute(self, query: str) -> str: ...

    def is_closed(self) -> bool: ...


class _AdaptedConnection(Protocol):
    @property
    def driver_connection(self) -> _AsyncpgConnection: ...


def _check_connection(
    dbapi_connection: _AdaptedConnection,
    _record: ConnectionPoolEntry,
    _proxy: PoolProxiedConnection,
) -> None:
    """PostgreSQL: a pooled connection is checked as it is taken from the pool with one
    `SELECT 1` (one round trip, no transaction), so one that a server restart broke is replaced
    before a request or a loop uses it. SQLAlchemy's own check (`pool_pre_ping`) wraps its
    statement in BEGIN and ROLLBACK for poolers that pin a connection per transaction: three
    round trips on every checkout, which an unlimited run pays tens of times a second. A
    failed check invalidates the whole pool, as the pre-ping did: a restart broke them all."""
    driver = dbapi_connection.driver_connection
    try:
        if driver.is_closed():
            raise ConnectionError("the connection is closed")
        await_(driver.execute("SELECT 1"))
    except Exception as error:  # a connection that cannot run SELECT 1 is of no use
        raise exc.InvalidatePoolError(repr(error)) from error


def _sqlite_begin(conn: sa.Connection) -> None:
    read_only = bool(conn.get_execution_options().get(_READ_OPTION, False))
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class Database:
    """One async engine plus `read()` / `write()` transactions with the dialect's rules."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        if self.dialect == "sqlite":
            if parsed.database in (None, "", ":memory:"):
                raise ValueError("SQLite needs a file (an in-memory database is per connection)")
            self.engine: AsyncEngine = create_async_engine(url, echo=echo)
            event.listen(self.engine.sync_engine, "connect", _sqlite_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        else:
            self.engine = create_async_engine(
                url, echo=echo, pool_size=pool_size, max_overflow=pool_size
            )
            event.listen(self.engine.sync_engine.pool, "checkout", _check_connection)
        self._writers = WriterQueue() if self.is_sqlite else None

    def listen(self, listener: EventListener) -> None:
        """Hand every batch of event rows (operation and sub-job history) to `listener` inside
        the transaction that writes it: the product's transactional outbox (webhooks) hangs here,
        so the engine needs to know nothing about it."""
        _LISTENERS.setdefault(self.engine.sync_engine, []).append(listener)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
        lock = self._writers or contextlib.nullcontext()
        async with lock, self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read(self, *, snapshot: bool = False) -> AsyncIterator[AsyncConnection]:
        """A read (never takes SQLite's write lock). SQLite reads one snapshot per transaction
        anyway. On PostgreSQL `snapshot=True` is a REPEATABLE READ transaction, so several
        statements see the same moment; without it every statement runs on its own
        (autocommit), which sees what READ COMMITTED would (a snapshot per statement) in one
        round trip instead of three (BEGIN, the statement, ROLLBACK): most of the engine's
        idle rounds are one such read that finds nothing."""
        async with self.engine.connect() as conn:
            options: dict[str, object] = {_READ_OPTION: True}
            if self.is_postgres:
                options["isolation_level"] = "REPEATABLE READ" if snapshot else "AUTOCOMMIT"
            await conn.execution_options(**options)
            yield conn

    @contextlib.asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """PostgreSQL: a connection on which every statement is its own transaction, for a
        write that is one statement (one round trip instead of BEGIN, the statement and
        COMMIT). It is not the engine's write path: nothing here reaches the event listeners,
        so a statement run here must write no events."""
        if not self.is_postgres:
            raise ValueError("autocommit writes are for PostgreSQL (SQLite queues its writers)")
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    def skip_locked(self, stmt: sa.Select[tuple[object, ...]]) -> sa.Select[tuple[object, ...]]:
        """Claim rows nobody else holds (PostgreSQL); SQLite's write lock already serialises."""
        return stmt.with_for_update(skip_locked=True) if self.is_postgres else stmt

    async def lock_operations(self, conn: AsyncConnection, ids: list[str]) -> None:
        """Lock operation rows in id order before touching their sub-jobs (PostgreSQL)."""
        if self.is_postgres and ids:
            stmt = (
                sa.select(OPERATIONS.c.id)
                .where(OPERATIONS.c.id.in_(sorted(ids)))
                .order_by(OPERATIONS.c.id)
                .with_for_update()
            )
            await conn.execute(stmt)

    async def dispose(self) -> None:
        await self.engine.dispose()
