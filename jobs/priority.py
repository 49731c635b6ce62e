"""Who goes first when the engine and the API of one process both want SQLite's write lock.

SQLite has one writer at a time; the writers of one process queue on an in-process lock
(`jobs.store.db`). The engine's writes (claims, outcomes, plans) are the ones that keep the clouds'
budgets used and operations moving, so they go first; writes made for an API request (creating an
operation, pausing it, ...) run `deferring()` and take the lock when no engine write waits. So that
an API write is never starved by a busy engine, at most `ENGINE_RUN` engine writes in a row go
ahead of a waiting API write.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import deque
from collections.abc import Iterator

ENGINE, DEFERRING = 0, 1
ENGINE_RUN = 4  # engine writes in a row ahead of a waiting deferring one

_LEVEL: contextvars.ContextVar[int] = contextvars.ContextVar("jobs_write_priority", default=ENGINE)


@contextlib.contextmanager
def deferring() -> Iterator[None]:
    """The writes made inside (in this task and the tasks it starts) yield to the engine's."""
    token = _LEVEL.set(DEFERRING)
    try:
        yield
    finally:
        _LEVEL.reset(token)


def level() -> int:
    return _LEVEL.get()


class WriterQueue:
    """One writer at a time: engine writers first, the deferring ones after (FIFO within each),
    with at most `ENGINE_RUN` engine writers in a row ahead of a waiting deferring one."""

    def __init__(self) -> None:
        self._busy = False
        self._waiting: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())
        self._engine_run = 0

    async def acquire(self) -> None:
        if not self._busy:
            self._busy = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[level()].append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed the lock as it was cancelled: pass it on
            raise

    def _next(self) -> asyncio.Future[None] | None:
        engine, deferring = self._waiting
        for queue in (engine, deferring):
            while queue and queue[0].done():  # cancelled waiters
                queue.popleft()
        if engine and not (deferring and self._engine_run >= ENGINE_RUN):
            self._engine_run += 1
            return engine.popleft()
        self._engine_run = 0
        return deferring.popleft() if deferring else None

    def release(self) -> None:
        future = self._next()
        if future is None:
            self._busy = False
        else:
            future.set_result(None)  # the lock passes to it (still busy)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()
