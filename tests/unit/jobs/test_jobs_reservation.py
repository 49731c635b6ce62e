"""Headroom ahead of time, and reservations that end when the call reaches the limiter."""

from __future__ import annotations

import asyncio

from jobs.clock import FakeClock
from jobs.ratelimit import Budget, RateLimiter, Reservation, reserving


async def test_headroom_ahead_counts_room_that_frees_by_then() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, margin=0.0)
    limiter.configure("k", [Budget(2, 10.0)])
    await limiter.acquire("k")
    await clock.advance(4.0)
    await limiter.acquire("k")
    assert limiter.headroom("k").requests == 0
    assert limiter.headroom("k", ahead=5.0).requests == 0
    assert limiter.headroom("k", ahead=6.0).requests == 1
    assert limiter.headroom("k", ahead=10.0).requests == 2


async def test_headroom_ahead_still_counts_calls_in_flight() -> None:
    limiter = RateLimiter(FakeClock(), margin=0.0)
    limiter.configure("k", [Budget(2, 10.0)])
    await limiter.acquire("k", until_done=True)
    assert limiter.headroom("k", ahead=100.0).requests == 1
    limiter.done("k")
    assert limiter.headroom("k").requests == 1
    assert limiter.headroom("k", ahead=10.1).requests == 2


async def test_a_reservation_ends_once_when_its_call_acquires_its_key() -> None:
    limiter = RateLimiter(FakeClock())
    limiter.configure("k", [Budget(5, 10.0)])
    released: list[str] = []
    reservation = Reservation("k", lambda: released.append("k"))

    async def call() -> None:
        await limiter.acquire("other")  # another key: the reservation stays
        assert released == []
        await limiter.acquire("k", until_done=True)
        assert released == ["k"]
        limiter.done("k")

    await asyncio.create_task(call(), context=reserving(reservation))
    reservation.release()  # what the dispatcher does when the call ends: no second release
    assert released == ["k"]
    await limiter.acquire("k")  # outside the task's context: nothing to release
    assert released == ["k"]
