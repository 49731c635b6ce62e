"""A worker's name is held by one live process at a time.

A process that starts with a worker's name takes back at once whatever that worker held
(`recover`: DISPATCHING rows go back with verify_first). That is only safe if the previous holder
of the name is dead, so the name is locked by a lock that dies with its process, never judged
from a recent heartbeat (a restart right after `kill -9` must not wait, nor be refused):

- PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) on a connection of its own, held
  for the process's life (outside the pool, in autocommit). The server ends the session of a dead
  process, and its lock with it, at once.
- SQLite: `flock` on a file next to the database file (`<db>.worker-<name>.lock`); the kernel
  releases it when the process dies. The file stays (deleting it would race with the next
  holder); it holds the name and the pid of its last holder, for people.

A second live process with the same name gets `WorkerNameTaken`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = structlog.get_logger("jobs.identity")


class WorkerNameTaken(RuntimeError):
    """Another live process holds this worker's name."""

    def __init__(self, worker: str, where: str) -> None:
        super().__init__(
            f"worker {worker!r} is already running: another live process holds its lock "
            f"({where}); give this process a name of its own"
        )
        self.worker = worker
        self.where = where


def advisory_key(worker: str) -> int:
    """The bigint of a worker name's advisory lock (a hash: names are not limited to 8 bytes)."""
    digest = hashlib.sha256(b"fleet-worker\0" + worker.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_path(database: str, worker: str) -> Path:
    """`<db>.worker-<name>.lock` next to the SQLite file; the name made safe, plus a short hash so
    that names differing only in unsafe characters get files of their own."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", worker)[:64]
    tag = hashlib.sha256(worker.encode()).hexdigest()[:8]
    return Path(f"{database}.worker-{safe}-{tag}.lock")


class WorkerLock:
    """What `worker_identity` yields: whether the name's lock is held right now (`/readyz`)."""

    @property
    def held(self) -> bool:
        return True


class _FileLock(WorkerLock):
    def __init__(self, path: Path, worker: str) -> None:
        self.path, self.worker = path, worker
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkerNameTaken(self.worker, f"file {self.path}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.worker}\n{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class _AdvisoryLock(WorkerLock):
    def __init__(self, url: str, worker: str) -> None:
        self.url, self.worker, self.key = url, worker, advisory_key(worker)
        self._engine: AsyncEngine | None = None
        self._conn: AsyncConnection | None = None

    @property
    def held(self) -> bool:
        """Held as far as the last check (every 10 s) knows: its connection is open."""
        return self._conn is not None

    async def acquire(self) -> None:
        if self._engine is None:
            self._engine = create_async_engine(self.url, poolclass=NullPool)
        conn = await self._engine.connect()
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        got = (await conn.execute(sa.select(sa.func.pg_try_advisory_lock(self.key)))).scalar()
        if not got:
            await conn.close()
            raise WorkerNameTaken(self.worker, "a PostgreSQL advisory lock")
        self._conn = conn

    async def check(self) -> None:
        """Still held? A lost connection lost the lock: take it again (or learn it was taken)."""
        try:
            if self._conn is not None:
                await self._conn.execute(sa.select(1))
                return
        except (sa.exc.DBAPIError, OSError) as exc:
            log.warning("worker_lock_connection_lost", worker=self.worker, error=str(exc))
            await self._close()
        await self.acquire()
        log.info("worker_lock_taken_again", worker=self.worker)

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError, OSError):
                await conn.close()

    async def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError, OSError):
                await self._conn.execute(sa.select(sa.func.pg_advisory_unlock(self.key)))
        await self._close()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


async def _watch(lock: _AdvisoryLock, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await lock.check()
        except WorkerNameTaken as exc:
            log.error("worker_name_taken_over", worker=lock.worker, error=str(exc))
        except (sa.exc.DBAPIError, OSError) as exc:
            log.warning("worker_lock_unavailable", worker=lock.worker, error=str(exc))


@contextlib.asynccontextmanager
async def worker_identity(
    url: str, worker: str, *, check_every: float = 10.0
) -> AsyncIterator[WorkerLock]:
    """Hold `worker`'s name while the block runs; raises WorkerNameTaken if a live process holds
    it. An in-memory SQLite database is one process's own: nothing to lock."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        lock = _AdvisoryLock(url, worker)
        await lock.acquire()
        watcher = asyncio.create_task(_watch(lock, check_every), name="worker-identity")
        try:
            yield lock
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await lock.release()
        return
    if parsed.database in (None, "", ":memory:"):
        yield WorkerLock()
        return
    file_lock = _FileLock(lock_path(parsed.database, worker), worker)
    file_lock.acquire()
    try:
        yield file_lock
    finally:
        file_lock.release()
