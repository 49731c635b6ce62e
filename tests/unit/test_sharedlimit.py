"""`jobs.sharedlimit.SharedRateLimiter` on a fake clock, with an in-memory ledger shared by two
limiters (as two replicas share the database's): one limit for both, a call counted while in
flight by the other, an answer counted from its answer, keys without a budget never asking the
ledger, and nothing granted while the ledger fails."""

from __future__ import annotations

import asyncio

import pytest

from jobs.clock import FakeClock
from jobs.ratelimit import Budget
from jobs.sharedlimit import Decide, Entry, SharedRateLimiter

KEY = "ecs:action"


class MemoryLedger:
    """The rows of `jobs.store.budgets` in memory: (worker, servers, ended_at or None, answered)."""

    def __init__(self, clock: FakeClock, rows: list[list[object]]) -> None:
        self.clock, self.rows = clock, rows
        self.worker = ""
        self.exchanges = 0
        self.fail = False
        self._lock = asyncio.Lock()

    def for_worker(self, worker: str) -> MemoryLedger:
        other = MemoryLedger(self.clock, self.rows)
        other.worker, other._lock = worker, self._lock
        return other

    async def exchange(self, key: str, keep: float, decide: Decide) -> None:
        async with self._lock:
            self.exchanges += 1
            if self.fail:
                raise OSError("database unavailable")
            now = self.clock.monotonic()
            entries = [
                Entry(1, int(servers), bool(answered), None if end is None else now - end)  # type: ignore[arg-type]
                for worker, servers, end, answered in self.rows
                if end is None or now - end < keep  # type: ignore[operator]
            ]
            for servers, until_done in decide(entries):
                self.rows.append([self.worker, servers, None if until_done else now, False])

    def ended(self, key: str, servers: int) -> None:
        for row in self.rows:
            if row[0] == self.worker and row[1] == servers and row[2] is None:
                row[2], row[3] = self.clock.monotonic(), True
                return


async def _steps(clock: FakeClock, seconds: float, step: float = 0.25) -> None:
    """Advance in small steps, so that tasks woken on the way get to sleep again."""
    for _ in range(round(seconds / step)):
        await clock.advance(step)


def _pair(budget: Budget) -> tuple[FakeClock, list[SharedRateLimiter], list[MemoryLedger]]:
    clock = FakeClock()
    base = MemoryLedger(clock, [])
    ledgers = [base.for_worker("a"), base.for_worker("b")]
    limiters = [SharedRateLimiter(clock, ledger) for ledger in ledgers]
    for limiter in limiters:
        limiter.configure(KEY, [budget])
    return clock, limiters, ledgers


async def test_two_limiters_share_one_limit_counted_from_each_answer() -> None:
    clock, (a, b), _ = _pair(Budget(3, 10.0))
    granted: list[tuple[str, float]] = []

    async def call(name: str, limiter: SharedRateLimiter, hold: float) -> None:
        async with limiter.sending(KEY):
            granted.append((name, clock.monotonic()))
            await clock.sleep(hold)

    tasks = [asyncio.ensure_future(call("a", a, 1.0)) for _ in range(3)]
    tasks += [asyncio.ensure_future(call("b", b, 1.0)) for _ in range(3)]
    await clock.advance(0.0)
    assert len(granted) == 3  # one limit for both
    await _steps(clock, 5.0)
    assert len(granted) == 3  # answered at 1 s: they count until 11 s (+ the answer margin)
    await _steps(clock, 6.5)
    assert len(granted) == 6
    await _steps(clock, 2.0)
    await asyncio.gather(*tasks)
    assert min(t for _, t in granted[3:]) >= 11.0


async def test_the_other_limiters_calls_in_flight_count_until_answered() -> None:
    clock, (a, b), _ = _pair(Budget(1, 1.0))
    await a.acquire(KEY, until_done=True)  # in flight, no answer yet
    waiting = asyncio.ensure_future(b.acquire(KEY, until_done=True))
    await _steps(clock, 30.0)
    assert not waiting.done()
    a.done(KEY)
    await _steps(clock, 0.5)
    assert not waiting.done()  # counted for a period from its answer
    await _steps(clock, 0.75)
    assert waiting.done()


async def test_a_key_without_budget_never_asks_the_ledger() -> None:
    clock = FakeClock()
    ledger = MemoryLedger(clock, []).for_worker("a")
    limiter = SharedRateLimiter(clock, ledger)
    limiter.configure("ecs:tags", [])
    for _ in range(100):
        await limiter.acquire("ecs:tags")
    assert ledger.exchanges == 0


async def test_nothing_is_granted_while_the_ledger_fails() -> None:
    clock, (a, _), (ledger, _) = _pair(Budget(5, 1.0))
    ledger.fail = True
    waiting = asyncio.ensure_future(a.acquire(KEY, until_done=True))
    await _steps(clock, 3.0)
    assert not waiting.done() and ledger.exchanges > 1  # fails closed, tries again
    ledger.fail = False
    await _steps(clock, 1.0)
    assert waiting.done()


@pytest.mark.parametrize("servers", [1, 4])
async def test_headroom_sees_the_other_limiters_use(servers: int) -> None:
    clock, (a, b), _ = _pair(Budget(8, 10.0, "servers"))  # type: ignore[arg-type]
    async with a.sending(KEY, servers):
        pass
    await b.acquire(KEY, 1, until_done=True)  # b's exchange reads a's answered call
    assert b.headroom(KEY).servers == 8 - servers - 1
    await clock.advance(0.0)
