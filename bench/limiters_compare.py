"""Compare rate limiters the way a cloud sees them: on loopback, stamped at receive time.

    python bench/limiters_compare.py [--json] [--seed N]

For each limiter, with a limit of 50 per 1 s:

- window: 120 workers loop "acquire, wait 0-30 ms (send jitter), POST" for 4 s against a local
  aiohttp server that stamps every request with its receive time (fleet's `sending` holds the
  request until its answer instead); we report the most requests the server saw in any closed
  1 s window (the limit is 50) and the steady rate (least-squares slope of the cumulative count
  over receive time);
- fifo: 100 callers arrive 0-4 ms apart and queue; we count inversions (pairs served in the
  opposite order of arrival; 0 is FIFO);
- cpu: 1,000 callers call `acquire` at once, all but the first few dozen block; we measure the
  process CPU time over 1 s of wall time, in percent of one core.

Everything runs on 127.0.0.1, is bounded (about 6 s per limiter, under a minute in all) and
stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import aiohttp
from aiohttp import web
from aiolimiter import AsyncLimiter
from asyncio_throttle.throttler import Throttler

from jobs.clock import SystemClock
from jobs.ratelimit import Budget, RateLimiter

LIMIT, PERIOD, JITTER = 50, 1.0, 0.030
WORKERS, RUN_SECONDS = 120, 4.0
FIFO_WAITERS, CPU_WAITERS, CPU_SECONDS = 100, 1000, 1.0

Acquire = Callable[[], Awaitable[None]]
Send = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Subject:
    """A limiter under test: `acquire` alone, and `call` = one rate-limited send."""

    acquire: Acquire
    call: Callable[[Send], Awaitable[None]]


def _acquire_then(acquire: Acquire) -> Subject:
    async def call(send: Send) -> None:
        await acquire()
        await send()

    return Subject(acquire, call)


@dataclass(frozen=True)
class Candidate:
    name: str
    make: Callable[[], Subject]


def _throttler(limit: int, period: float) -> Subject:
    throttler = Throttler(rate_limit=limit, period=period)
    return _acquire_then(throttler.acquire)


def _aiolimiter(rate: float, period: float) -> Subject:
    return _acquire_then(AsyncLimiter(rate, period).acquire)


def _ours(margin: float, *, until_answer: bool = False) -> Subject:
    limiter = RateLimiter(SystemClock(), margin=margin)
    limiter.configure("k", [Budget(LIMIT, PERIOD)])

    async def acquire() -> None:
        await limiter.acquire("k")

    async def call(send: Send) -> None:
        async with limiter.sending("k"):
            await send()

    return Subject(acquire, call) if until_answer else _acquire_then(acquire)


CANDIDATES = [
    Candidate("asyncio-throttle Throttler(50, 1.0)", lambda: _throttler(LIMIT, PERIOD)),
    Candidate("asyncio-throttle Throttler(50, 1.05)", lambda: _throttler(LIMIT, 1.05 * PERIOD)),
    Candidate("aiolimiter AsyncLimiter(50, 1)", lambda: _aiolimiter(LIMIT, PERIOD)),
    Candidate("aiolimiter AsyncLimiter(1, 1/50)", lambda: _aiolimiter(1, PERIOD / LIMIT)),
    Candidate("fleet acquire, margin 0.1 s (default)", lambda: _ours(0.1)),
    Candidate("fleet acquire, margin 0.05 s", lambda: _ours(0.05)),
    Candidate("fleet sending (until the answer), default", lambda: _ours(0.1, until_answer=True)),
]


@dataclass(frozen=True)
class Result:
    limiter: str
    max_in_window: int
    limit: int
    received: int
    steady_per_s: float
    fifo_inversions: int
    fifo_waiters: int
    cpu_percent_1000_waiters: float


class StampServer:
    """A tiny HTTP server that records the monotonic receive time of every POST."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _hit(self, request: web.Request) -> web.Response:
        self.stamps.append(time.monotonic())
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hit", self._hit)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hit"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def max_in_closed_window(stamps: list[float], period: float) -> int:
    """The most stamps in any closed interval [t, t + period] (it suffices to start at a stamp)."""
    times, best, j = sorted(stamps), 0, 0
    for i, start in enumerate(times):
        j = max(j, i)
        while j + 1 < len(times) and times[j + 1] <= start + period:
            j += 1
        best = max(best, j - i + 1)
    return best


def steady_rate(stamps: list[float], units: list[int] | None = None) -> float:
    """Units per second in the steady state: least-squares slope of cumulative units over time.

    Unbiased for both shapes a limiter can produce: even spacing, and a burst per window (there,
    the mean cumulative count of each burst sits on the line through the bursts).
    """
    pairs = sorted(zip(stamps, units or [1] * len(stamps), strict=True))
    if len(pairs) < 2:
        return 0.0
    cumulative, ys = 0, []
    for _, u in pairs:
        cumulative += u
        ys.append(cumulative)
    ts = [t for t, _ in pairs]
    t_mean, y_mean = sum(ts) / len(ts), sum(ys) / len(ys)
    var = sum((t - t_mean) ** 2 for t in ts)
    cov = sum((t - t_mean) * (y - y_mean) for t, y in zip(ts, ys, strict=True))
    return cov / var if var > 0 else 0.0


def inversions(order: list[int]) -> int:
    return sum(
        1 for a in range(len(order)) for b in range(a + 1, len(order)) if order[a] > order[b]
    )


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def window_test(
    subject: Subject, server: StampServer, session: aiohttp.ClientSession, rng: random.Random
) -> tuple[int, int, float]:
    server.stamps.clear()

    async def send() -> None:
        await asyncio.sleep(rng.uniform(0, JITTER))
        async with session.post(server.url) as response:
            await response.read()

    async def worker() -> None:
        while True:
            await subject.call(send)

    tasks = [asyncio.create_task(worker()) for _ in range(WORKERS)]
    await asyncio.sleep(RUN_SECONDS)
    await _cancel(tasks)
    await asyncio.sleep(0.1)  # requests already on the wire land
    stamps = list(server.stamps)
    return max_in_closed_window(stamps, PERIOD), len(stamps), steady_rate(stamps)


async def fifo_test(acquire: Acquire, rng: random.Random) -> int:
    """Callers arrive 0-4 ms apart, as dispatch loops do; count who was served out of turn."""
    served: list[int] = []

    async def waiter(index: int) -> None:
        await acquire()
        served.append(index)

    tasks = []
    for index in range(FIFO_WAITERS):
        tasks.append(asyncio.create_task(waiter(index)))
        await asyncio.sleep(rng.uniform(0, 0.004))
    try:
        async with asyncio.timeout(10 * PERIOD):
            await asyncio.gather(*tasks)
    finally:
        await _cancel(tasks)
    return inversions(served)


async def cpu_test(acquire: Acquire) -> float:
    """Percent of one core burnt while 1,000 callers wait (all but the first ~50 block)."""

    async def waiter() -> None:
        await acquire()

    tasks = [asyncio.create_task(waiter()) for _ in range(CPU_WAITERS)]
    await asyncio.sleep(0.05)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(CPU_SECONDS)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await _cancel(tasks)
    return 100.0 * cpu / wall


async def measure(candidate: Candidate, server: StampServer, rng: random.Random) -> Result:
    connector = aiohttp.TCPConnector(limit=WORKERS)
    async with aiohttp.ClientSession(connector=connector) as session:
        peak, received, rate = await window_test(candidate.make(), server, session, rng)
    return Result(
        limiter=candidate.name,
        max_in_window=peak,
        limit=LIMIT,
        received=received,
        steady_per_s=round(rate, 1),
        fifo_inversions=await fifo_test(candidate.make().acquire, rng),
        fifo_waiters=FIFO_WAITERS,
        cpu_percent_1000_waiters=round(await cpu_test(candidate.make().acquire), 1),
    )


async def main_async(seed: int) -> list[Result]:
    server = StampServer()
    await server.start()
    try:
        return [await measure(c, server, random.Random(seed)) for c in CANDIDATES]
    finally:
        await server.stop()


def table(results: list[Result]) -> str:
    head = (
        f"{'limiter':46} {'max in any 1 s':>14} {'rate/s':>7} "
        f"{'FIFO inversions':>16} {'CPU, 1000 waiters':>18}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.limiter:46} {f'{r.max_in_window}/{r.limit}':>14} {r.steady_per_s:>7} "
            f"{f'{r.fifo_inversions} of {r.fifo_waiters}':>16} "
            f"{f'{r.cpu_percent_1000_waiters} %':>18}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=1, help="seed of the send jitter")
    args = parser.parse_args(argv)
    results = asyncio.run(main_async(args.seed))
    if args.json:
        settings = {"limit": LIMIT, "period": PERIOD, "jitter_s": [0.0, JITTER]}
        print(json.dumps({**settings, "limiters": [asdict(r) for r in results]}))
    else:
        print(f"limit {LIMIT} per {PERIOD:g} s, send jitter 0-{JITTER * 1000:g} ms, loopback")
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
