"""Keyed, FIFO, sliding-log rate limiter: what keeps every cloud endpoint under its API limits.

A rate key (``"bms-prod:action"``) has zero or more budgets, "at most `limit` units of `unit` in
any window of `period` seconds", a unit being a request or a server (a batch call carrying 20
servers spends 1 request and 20 servers). Each budget logs what was sent; a request leaves when,
for every budget, the units still counted plus its own fit under the limit. A request counts
over an interval that starts when it is granted and ends:

- `acquire(key, n)`: ``period + margin`` after the grant. Guarantee: the requests granted in any
  half-open interval of length ``period + margin`` carry at most `limit` units. A server counting
  at receive time therefore never sees more than `limit` in a window of `period` as long as the
  spread of the delays from grant to receipt stays under `margin` (default 0.1 s, which costs
  0.17% of a 60 s budget; the margin is in seconds because jitter does not grow with the period).
- ``async with sending(key, n)`` (or `acquire(..., until_done=True)` + `done`): ``period +
  min(margin, ANSWER_MARGIN)`` after the answer came back. Guarantee: at every instant the
  intervals in force carry at most `limit` units; a server receives a request between its grant
  and its answer, so whatever the latency (cold TLS connections, a busy event loop, queueing for
  a pooled connection) no window of `period` at the server ever holds more than `limit`. This is
  the mode to use; measured, the first one throttles when in-process jitter exceeds the margin.

While throttled (below), "limit" means the reduced one.

Why not a library (``bench/limiters_compare.py``, ``docs/benchmarks.md``): asyncio-throttle polls
every 10 ms per waiter, is not FIFO and lets bursts past the limit; aiolimiter's bucket lets twice
the limit through in the first period, its even spacing cannot count servers per batch, and
neither is FIFO.

Waiting: callers queue per key in arrival order and a newcomer never overtakes a queued caller,
even one that would fit (head-of-line blocking is the price of FIFO). One task per key sleeps on
the injected `Clock` exactly until the head fits, grants all that fit, and sleeps again; nothing
polls. Whatever could let the head go sooner (a cancelled head, `configure`, `done`) restarts
that sleep. A caller cancelled after its grant keeps its place in the log (under-use, never
excess).

Throttling answers (`on_throttled`) block the key until ``retry_after`` if the server gave one,
else for a quarter of the key's longest period, and halve its effective limits (once per period,
however many in-flight calls come back throttled); they grow back linearly to the configured
limits within `RECOVERY_PERIODS` periods.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import math
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from jobs.clock import Clock

DEFAULT_MARGIN = 0.1
"""Seconds added to every period: covers up to 100 ms of send-to-receive jitter."""
ANSWER_MARGIN = 0.01
"""The margin (at most) of a request counted until its answer: the server has seen it by then,
so the margin only has to cover how the server's window treats its edge."""
BACKOFF = 0.5
"""Effective limits are multiplied by this on a throttling answer."""
MIN_FACTOR = 1 / 64
PAUSE_FRACTION = 0.25
"""Without ``retry_after``, a throttled key pauses for this fraction of its longest period."""
DEFAULT_PAUSE = 1.0
"""Pause (s) of a throttled key that has no budget, when the server gives no ``retry_after``."""
RECOVERY_PERIODS = 4.0
"""Effective limits grow back from zero to the configured ones in this many longest periods."""


class Unit(StrEnum):
    REQUESTS = "requests"
    SERVERS = "servers"


@dataclass(frozen=True)
class Budget:
    """At most `limit` units of `unit` in any window of `period` seconds."""

    limit: int
    period: float
    unit: Unit = Unit.REQUESTS

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"budget limit must be an integer >= 1, got {self.limit!r}")
        if not math.isfinite(self.period) or self.period <= 0:
            raise ValueError(
                f"budget period must be a positive number of seconds, got {self.period!r}"
            )
        object.__setattr__(self, "unit", Unit(self.unit))


@dataclass(frozen=True)
class Headroom:
    """What could leave right now without waiting (``sys.maxsize`` = unbounded)."""

    requests: int
    servers: int


@dataclass(frozen=True)
class KeyState:
    """A key's limiter state, for ``/v1/endpoints`` and ``/metrics``.

    `used` holds, for each unit that has a budget, the units in the current window of that unit's
    longest budget; `penalty_until` is the monotonic time until which the key is blocked.
    """

    key: str
    budgets: tuple[Budget, ...]
    used: Mapping[Unit, int]
    queued: int
    throttled: int
    waits: int
    penalty_until: float | None


@dataclass
class Reservation:
    """Room a caller set aside for one call of `key` before sending it (the dispatcher claims
    sub-jobs against `headroom()` and counts them here until the call reaches the limiter).

    The limiter counts a call from its `acquire`; until then the reserver must count it itself,
    and from then on it must not, or the call is counted twice and the key runs below its
    ceiling. `acquire` on `key` in a task running under `reserving(...)` releases the
    reservation (once); the reserver also releases it when the call ends without acquiring.
    """

    key: str
    on_release: Callable[[], None]
    released: bool = field(default=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.on_release()


_RESERVATION: contextvars.ContextVar[Reservation | None] = contextvars.ContextVar(
    "jobs_ratelimit_reservation", default=None
)


def reserving(reservation: Reservation) -> contextvars.Context:
    """A context to run the reserved call's task in (``create_task(..., context=...)``)."""
    context = contextvars.copy_context()
    context.run(_RESERVATION.set, reservation)
    return context


def release_reservation(key: str) -> None:
    """Called by `acquire`: the call reserved for `key` in this task is the limiter's to count."""
    held = _RESERVATION.get()
    if held is not None and held.key == key:
        held.release()


class _Window:
    """The log of one budget: ``(expiry, units)`` in two deques, and the sum of their units.

    An entry expires `period + margin` after its send (`logs[0]`), or `period + answer margin`
    after its answer for requests acquired `until_done` (`logs[1]`). Each deque receives entries
    "now + its own span", so each stays in expiry order. Requests still in flight are counted by
    their key (`flying`), not here.
    """

    __slots__ = ("budget", "logs", "spans", "total")

    def __init__(self, budget: Budget, margin: float) -> None:
        self.budget = budget
        self.spans = (budget.period + margin, budget.period + min(margin, ANSWER_MARGIN))
        self.logs: tuple[deque[tuple[float, int]], ...] = (deque(), deque())
        self.total = 0

    def add(self, now: float, units: int, answered: bool) -> None:
        if units:
            self.logs[int(answered)].append((now + self.spans[int(answered)], units))
            self.total += units

    def inherit(self, old: _Window) -> None:
        """Take over `old`'s entries, each counted for this budget's period from its end."""
        shift = self.budget.period - old.budget.period
        self.logs = tuple(deque((end + shift, units) for end, units in log) for log in old.logs)
        self.total = old.total

    def expire(self, now: float) -> None:
        for log in self.logs:
            while log and now >= log[0][0]:
                self.total -= log.popleft()[1]

    def freed_by(self, at: float) -> int:
        """Units of the (expired up to now) log that expire by `at`."""
        freed = 0
        for log in self.logs:
            for expiry, units in log:
                if expiry > at:
                    break
                freed += units
        return freed

    def wait_for(self, need: int, limit: int, now: float, flying: int) -> float:
        """Seconds until `need` more units fit under `limit`; 0 = now, inf = after an answer.

        A request larger than the (throttled) limit may still go alone into an empty window, so
        that backing off never starves a batch that fits the configured limit.
        """
        self.expire(now)
        used = self.total + flying
        if need == 0 or used == 0 or used + need <= limit:
            return 0.0
        for expiry, units in heapq.merge(*self.logs):
            used -= units
            if used == 0 or used + need <= limit:
                return expiry - now
        return math.inf


@dataclass
class _Waiter:
    servers: int
    until_done: bool
    future: asyncio.Future[None]


class _Key:
    """Everything the limiter knows about one key; pure bookkeeping, no awaiting."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.budgets: tuple[Budget, ...] = ()
        self.windows: list[_Window] = []
        self.queue: deque[_Waiter] = deque()
        self.pump: asyncio.Task[None] | None = None
        self.sleeping: asyncio.Task[None] | None = None
        self.flying = {Unit.REQUESTS: 0, Unit.SERVERS: 0}  # acquired `until_done`, not done yet
        self.throttled = 0
        self.waits = 0
        self.penalty_until = -math.inf
        self.factor_base = 1.0
        self.factor_since = 0.0
        self.no_decrease_until = -math.inf

    def longest_period(self) -> float:
        return max((b.period for b in self.budgets), default=DEFAULT_PAUSE)

    def factor(self, now: float) -> float:
        if self.factor_base >= 1.0 or now <= self.factor_since:
            return self.factor_base
        grown = (now - self.factor_since) / (RECOVERY_PERIODS * self.longest_period())
        return min(1.0, self.factor_base + grown)

    def limit_of(self, budget: Budget, now: float) -> int:
        return max(1, math.floor(budget.limit * self.factor(now)))

    def delay(self, servers: int, now: float) -> float:
        """Seconds until a request carrying `servers` servers may leave; 0 means now."""
        wait = self.penalty_until - now
        for window in self.windows:
            need = 1 if window.budget.unit is Unit.REQUESTS else servers
            limit = self.limit_of(window.budget, now)
            flying = self.flying[window.budget.unit]
            wait = max(wait, window.wait_for(need, limit, now, flying))
        return max(0.0, wait)

    def used(self, window: _Window, now: float) -> int:
        window.expire(now)
        return window.total + self.flying[window.budget.unit]

    def record(self, servers: int, now: float, until_done: bool, answered: bool = False) -> None:
        if until_done:
            self.flying[Unit.REQUESTS] += 1
            self.flying[Unit.SERVERS] += servers
            return
        for window in self.windows:
            window.add(now, 1 if window.budget.unit is Unit.REQUESTS else servers, answered)

    def finish(self, servers: int, now: float) -> None:
        if self.flying[Unit.REQUESTS] < 1 or self.flying[Unit.SERVERS] < servers:
            raise ValueError(f"done() on key {self.name!r} without a matching acquire(until_done)")
        self.flying[Unit.REQUESTS] -= 1
        self.flying[Unit.SERVERS] -= servers
        self.record(servers, now, until_done=False, answered=True)

    def drop_done(self) -> None:
        while self.queue and self.queue[0].future.done():
            self.queue.popleft()

    def check_size(self, servers: int) -> None:
        if isinstance(servers, bool) or not isinstance(servers, int) or servers < 0:
            raise ValueError(f"servers must be an integer >= 0, got {servers!r}")
        for budget in self.budgets:
            if budget.unit is Unit.SERVERS and servers > budget.limit:
                raise ValueError(
                    f"a request carrying {servers} servers can never fit the budget of "
                    f"{budget.limit} servers per {budget.period:g} s of key {self.name!r}; "
                    "split it into smaller batches"
                )

    def throttle(self, retry_after: float | None, now: float) -> None:
        self.throttled += 1
        pause = DEFAULT_PAUSE if not self.budgets else PAUSE_FRACTION * self.longest_period()
        if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
            pause = retry_after
        self.penalty_until = max(self.penalty_until, now + pause)
        factor = self.factor(now)
        if now >= self.no_decrease_until:
            # One overload shows up as many throttled answers at once: cut the limits once.
            factor = max(MIN_FACTOR, factor * BACKOFF)
            self.no_decrease_until = now + max(pause, self.longest_period())
        # Recovery resumes once the pause is over.
        self.factor_base, self.factor_since = factor, max(now, self.penalty_until)


class RateLimiter:
    """One per process; keys are strings like ``"ecs-prod:action"``. See the module docstring."""

    def __init__(self, clock: Clock, *, margin: float = DEFAULT_MARGIN) -> None:
        if not math.isfinite(margin) or margin < 0:
            raise ValueError(f"margin must be a number of seconds >= 0, got {margin!r}")
        self._clock = clock
        self._margin = margin
        self._keys: dict[str, _Key] = {}

    def _key(self, key: str) -> _Key:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key(key)
        return state

    def configure(self, key: str, budgets: Sequence[Budget]) -> None:
        """Set a key's budgets, at any time; the send history of each unit carries over.

        A new budget inherits the log of the longest old budget of the same unit (each entry
        counted for the new period), so a runtime change counts what was already sent, as far
        back as that old budget remembered. Queued requests that can no longer fit fail with
        `ValueError`.
        """
        state = self._key(key)
        new_budgets = tuple(budgets)
        windows = []
        for budget in new_budgets:
            window = _Window(budget, self._margin)
            old = [w for w in state.windows if w.budget.unit is budget.unit]
            if old:
                window.inherit(max(old, key=lambda w: w.budget.period))
            windows.append(window)
        state.budgets, state.windows = new_budgets, windows
        for waiter in state.queue:
            try:
                state.check_size(waiter.servers)
            except ValueError as exc:
                if not waiter.future.done():
                    waiter.future.set_exception(exc)
        self._kick(state)

    def headroom(self, key: str, ahead: float = 0.0) -> Headroom:
        """What one caller could send without waiting, or within `ahead` seconds (counting the
        room that logged sends free by then; calls in flight and callers already queued still
        count, the queued ones first): 0 while throttled.

        `ahead` lets a caller prepare calls (the dispatcher claims them in the database) before
        the room frees, and queue them in `acquire`, which sends each the moment it fits: the
        limit, not the caller's bookkeeping, then sets the pace. Counting the queue, rather than
        answering 0 while anyone queues, keeps the preparing going while the first prepared calls
        wait for their room: a window whose room frees call by call is prepared call by call,
        not all at once after the first few left (measured in `docs/benchmarks.md`, "Engine").
        """
        state = self._keys.get(key)
        if state is None:
            return Headroom(requests=sys.maxsize, servers=sys.maxsize)
        now = self._clock.monotonic()
        state.drop_done()
        if now + max(0.0, ahead) < state.penalty_until:
            return Headroom(requests=0, servers=0)
        waiting = [w.servers for w in state.queue if not w.future.done()]
        queued = {Unit.REQUESTS: len(waiting), Unit.SERVERS: sum(waiting)}
        room = {Unit.REQUESTS: sys.maxsize, Unit.SERVERS: sys.maxsize}
        for window in state.windows:
            used = state.used(window, now) - window.freed_by(now + max(0.0, ahead))
            used += queued[window.budget.unit]
            free = max(0, state.limit_of(window.budget, now) - used)
            room[window.budget.unit] = min(room[window.budget.unit], free)
        return Headroom(requests=room[Unit.REQUESTS], servers=room[Unit.SERVERS])

    async def acquire(self, key: str, servers: int = 1, *, until_done: bool = False) -> None:
        """Wait, in arrival order, until one request carrying `servers` servers may be sent now.

        The request counts from now until `period + margin` after now, or, with `until_done`,
        after the matching `done()` call (which the caller must make once the answer is in, or
        the request abandoned; `sending()` does it). Raises `ValueError` when the request is
        larger than a servers budget of the key (the caller must split the batch).
        """
        state = self._key(key)
        state.check_size(servers)
        release_reservation(key)  # counted from here on (as flying, or queued: no headroom)
        state.drop_done()
        now = self._clock.monotonic()
        if not state.queue and self._local(state) and state.delay(servers, now) <= 0:
            state.record(servers, now, until_done)
            return
        state.waits += 1
        waiter = _Waiter(servers, until_done, asyncio.get_running_loop().create_future())
        state.queue.append(waiter)
        if state.pump is None:
            state.pump = asyncio.create_task(self._pump(state), name=f"ratelimit:{key}")
        try:
            await waiter.future
        except asyncio.CancelledError:
            future = waiter.future
            granted = future.done() and not future.cancelled() and future.exception() is None
            if granted and until_done:
                self.done(key, servers)  # granted, but our caller will never send it
            elif state.queue and state.queue[0] is waiter:
                self._kick(state)  # the next one may fit sooner than this one would have
            raise

    def done(self, key: str, servers: int = 1) -> None:
        """A request acquired `until_done` got its answer (or was given up): its period starts."""
        state = self._key(key)
        state.finish(servers, self._clock.monotonic())
        self._kick(state)

    @contextlib.asynccontextmanager
    async def sending(self, key: str, servers: int = 1) -> AsyncIterator[None]:
        """``async with limiter.sending(key, n): <send, read the answer>``: exact at the server.

        The request counts from the moment the block is entered until `period + margin` after it
        exits, so a server counting it at any moment in between never sees more than the limit,
        whatever the latency.
        """
        await self.acquire(key, servers, until_done=True)
        try:
            yield
        finally:
            self.done(key, servers)

    def on_throttled(self, key: str, retry_after: float | None) -> None:
        """The server refused a request of this key for its rate: back off, then recover."""
        self._key(key).throttle(retry_after, self._clock.monotonic())

    def state(self, key: str) -> KeyState:
        state = self._keys.get(key)
        if state is None:
            return KeyState(key, (), {}, 0, 0, 0, None)
        now = self._clock.monotonic()
        used: dict[Unit, int] = {}
        longest: dict[Unit, float] = {}
        for window in state.windows:
            unit = window.budget.unit
            if window.budget.period > longest.get(unit, -1.0):
                longest[unit], used[unit] = window.budget.period, state.used(window, now)
        return KeyState(
            key=key,
            budgets=state.budgets,
            used=used,
            queued=sum(1 for w in state.queue if not w.future.done()),
            throttled=state.throttled,
            waits=state.waits,
            penalty_until=state.penalty_until if state.penalty_until > now else None,
        )

    def keys(self) -> list[str]:
        return sorted(self._keys)

    def _local(self, state: _Key) -> bool:
        """May this key's requests be granted from this process's own log alone? (Not when its
        budget is shared with other processes: `jobs.sharedlimit`.)"""
        return True

    def _kick(self, state: _Key) -> None:
        """Restart a sleeping pump so it recomputes how long the head must wait."""
        pump = state.pump
        if pump is not None and state.sleeping is pump:
            pump.cancel()
            state.sleeping = None
            state.pump = asyncio.create_task(self._pump(state), name=f"ratelimit:{state.name}")

    async def _pump(self, state: _Key) -> None:
        """Grant queued requests in order, sleeping exactly until the head one fits."""
        me = asyncio.current_task()
        try:
            await self._serve(state, me)
        except asyncio.CancelledError:
            if state.pump is me:  # cancelled from outside (shutdown), not restarted by _kick
                _fail_waiters(state, RuntimeError(f"rate limiter for {state.name!r} stopped"))
            raise
        except Exception as exc:  # a bug here must not leave callers waiting forever
            _fail_waiters(state, exc)
            raise
        finally:
            if state.pump is me:
                state.pump = None

    async def _serve(self, state: _Key, me: asyncio.Task[None] | None) -> None:
        while True:
            state.drop_done()
            if not state.queue:
                return
            now = self._clock.monotonic()
            head = state.queue[0]
            wait = state.delay(head.servers, now)
            if wait <= 0:
                state.queue.popleft()
                state.record(head.servers, now, head.until_done)
                head.future.set_result(None)
                continue
            state.sleeping = me
            try:
                if math.isinf(wait):  # only an answer (`done`) can make room: `_kick` wakes us
                    await asyncio.get_running_loop().create_future()
                else:
                    await self._clock.sleep(wait)
            finally:
                if state.sleeping is me:
                    state.sleeping = None


def _fail_waiters(state: _Key, exc: BaseException) -> None:
    for waiter in state.queue:
        if not waiter.future.done():
            waiter.future.set_exception(exc)
