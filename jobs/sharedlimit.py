"""A rate limiter whose budgets are shared by several processes (replicas on one database).

`jobs.ratelimit.RateLimiter` is exact for one process. With several replicas, each call let
through a limited key is also a row of a shared ledger (`jobs.store.budgets`: PostgreSQL), and
a key's requests are granted only inside one ledger transaction that holds the key against every
other process: it reads the calls that still count (every replica's: in flight, or answered
less than a period ago), rebuilds this key's windows from them, grants the queued requests that
fit under the limit (the same rule as one process: `_Key.delay`) and writes them, before any of
them is sent. So at every instant the calls in force of all replicas together carry at most the
limit, measured from the grant (before the send) to a period after the answer was written
(after the answer came back): a server counting at receive time never sees more in a window.

Timestamps are the database's: a row's age is read in the database's clock, and only ages
cross into this process's monotonic clock, so the hosts' clocks need not agree.

Queues stay per process and FIFO; the processes compete for each window's room when it frees
(whoever's transaction comes first), so operations stay fair within each replica and the
replicas share a key by their demand. Keys without a budget never touch the ledger.

A key blocked only by calls in flight (another process's, whose answers it cannot see coming, or
this one's until their answers are written) looks again after `RECHECK` seconds; a key waiting
for a window to roll over sleeps exactly until then, as in one process.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from jobs.clock import Clock
from jobs.ratelimit import DEFAULT_MARGIN, RateLimiter, Unit, _Key, _Waiter

log = structlog.get_logger("jobs.sharedlimit")

RECHECK = 0.05
"""Seconds before a key blocked only by calls in flight looks again."""
ERROR_PAUSE = 0.5
"""Seconds before a key whose ledger transaction failed tries again (nothing is granted)."""


@dataclass(frozen=True)
class Entry:
    """A call that still counts: `age` is the seconds since its period began (its answer, or its
    grant when it was not followed to its answer); None while it is in flight."""

    requests: int
    servers: int
    answered: bool
    age: float | None


Grant = tuple[int, bool]
"""(servers, until_done) of one request granted."""
Decide = Callable[[Sequence[Entry]], Sequence[Grant]]


class Ledger(Protocol):
    async def exchange(self, key: str, keep: float, decide: Decide) -> None:
        """In one transaction that holds `key` against every other process: read, in one
        snapshot, the entries of `key` that count within `keep` seconds (every process's calls in
        flight, this one's too, and every answer written), give them to `decide`, and write the
        grants it returns (in flight if `until_done`, else answered now)."""
        ...

    def ended(self, key: str, servers: int) -> None:
        """A call of `key` this process granted `until_done` got its answer: written soon."""
        ...


class SharedRateLimiter(RateLimiter):
    """`RateLimiter` whose limited keys are granted through a `Ledger` (see the module doc)."""

    def __init__(self, clock: Clock, ledger: Ledger, *, margin: float = DEFAULT_MARGIN) -> None:
        super().__init__(clock, margin=margin)
        self._ledger = ledger
        self._own: dict[str, Counter[Unit]] = {}  # granted `until_done` through the ledger
        self._own_sizes: dict[str, Counter[int]] = {}  # the same calls, by servers

    def _local(self, state: _Key) -> bool:
        return not state.budgets

    def done(self, key: str, servers: int = 1) -> None:
        super().done(key, servers)
        sizes = self._own_sizes.get(key)
        if sizes is not None and sizes[servers] > 0:
            sizes[servers] -= 1
            own = self._own[key]
            own[Unit.REQUESTS] -= 1
            own[Unit.SERVERS] -= servers
            self._ledger.ended(key, servers)

    async def _serve(self, state: _Key, me: asyncio.Task[None] | None) -> None:
        if self._local(state):
            await super()._serve(state, me)
            return
        while True:
            state.drop_done()
            if not state.queue:
                return
            wait = await self._grant(state)
            if wait <= 0:
                continue
            state.sleeping = me
            try:
                await self._clock.sleep(RECHECK if math.isinf(wait) else wait)
            finally:
                if state.sleeping is me:
                    state.sleeping = None

    async def _grant(self, state: _Key) -> float:
        """One ledger transaction: grant what fits. Returns how long the head must wait."""
        popped: list[_Waiter] = []
        keep = max(b.period for b in state.budgets) + self._margin + 1.0
        try:
            await self._ledger.exchange(state.name, keep, self._decider(state, popped))
        except BaseException as exc:
            state.queue.extendleft(reversed(popped))  # nothing of this transaction was granted
            self._forget(state.name, popped)
            if not isinstance(exc, Exception):
                raise
            log.warning("shared_budget_unavailable", rate_key=state.name, error=repr(exc))
            return ERROR_PAUSE
        for waiter in popped:
            if waiter.future.done():  # cancelled while its grant was being written
                if waiter.until_done:
                    self.done(state.name, waiter.servers)
            else:
                waiter.future.set_result(None)
        state.drop_done()
        if not state.queue:
            return 0.0
        return state.delay(state.queue[0].servers, self._clock.monotonic())

    def _decider(self, state: _Key, popped: list[_Waiter]) -> Decide:
        def decide(entries: Sequence[Entry]) -> Sequence[Grant]:
            now = self._clock.monotonic()
            self._rebuild(state, entries, now)
            grants: list[Grant] = []
            while state.queue:
                head = state.queue[0]
                if not head.future.done() and state.delay(head.servers, now) > 0:
                    break
                state.queue.popleft()
                if head.future.done():
                    continue
                state.record(head.servers, now, head.until_done)
                popped.append(head)
                grants.append((head.servers, head.until_done))
                if head.until_done:
                    self._count_own(state.name, head.servers, 1)
            return grants

        return decide

    def _count_own(self, key: str, servers: int, sign: int) -> None:
        own = self._own.setdefault(key, Counter())
        own[Unit.REQUESTS] += sign
        own[Unit.SERVERS] += sign * servers
        self._own_sizes.setdefault(key, Counter())[servers] += sign

    def _forget(self, key: str, popped: Sequence[_Waiter]) -> None:
        for waiter in popped:
            if waiter.until_done:
                self._count_own(key, waiter.servers, -1)
        state = self._keys[key]
        for unit in Unit:
            state.flying[unit] = self._own.get(key, Counter())[unit]

    def _rebuild(self, state: _Key, entries: Sequence[Entry], now: float) -> None:
        """This key's windows and calls in flight as every process's entries say (this one's
        own calls in flight among them: their rows were written before they were sent)."""
        flying = {Unit.REQUESTS: 0, Unit.SERVERS: 0}
        for entry in entries:
            if entry.age is None:
                flying[Unit.REQUESTS] += entry.requests
                flying[Unit.SERVERS] += entry.servers
        state.flying = flying
        for window in state.windows:
            logs: tuple[list[tuple[float, int]], list[tuple[float, int]]] = ([], [])
            for entry in entries:
                if entry.age is None:
                    continue
                units = entry.requests if window.budget.unit is Unit.REQUESTS else entry.servers
                expiry = now - entry.age + window.spans[int(entry.answered)]
                if units and expiry > now:
                    logs[int(entry.answered)].append((expiry, units))
            window.logs = tuple(deque(sorted(log)) for log in logs)
            window.total = sum(units for log in logs for _, units in log)
