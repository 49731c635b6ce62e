"""Headroom ahead of time, and reservations that end when the call reaches the limiter."""

from __future__ import annotations

import asyncio

from jobs.clock import FakeClock
from jobs.ratelimit import Budget, Headroom, RateLimiter, Reservation, Unit, reserving


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


async def test_headroom_ahead_counts_queued_callers_instead_of_closing() -> None:
    """Calls prepared ahead queue for their room; the room freeing after theirs is still there
    to prepare the next ones (a window that frees call by call is prepared call by call)."""
    clock = FakeClock()
    limiter = RateLimiter(clock, margin=0.0)
    limiter.configure("k", [Budget(5, 10.0), Budget(8, 10.0, Unit.SERVERS)])
    for _ in range(4):
        await limiter.acquire("k")
    await limiter.acquire("k", servers=2)  # 5 requests, 6 servers until t=10
    await clock.advance(1.0)
    queued = [asyncio.create_task(limiter.acquire("k", servers=2)) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(t.done() for t in queued)
    assert limiter.headroom("k") == Headroom(requests=0, servers=0)
    # by t=11 the 5 logged requests expire; the two queued take 2 requests and 4 servers of it
    assert limiter.headroom("k", ahead=10.0) == Headroom(requests=3, servers=4)
    limiter.on_throttled("k", retry_after=20.0)  # while throttled there is no room at all
    assert limiter.headroom("k", ahead=10.0) == Headroom(requests=0, servers=0)
    for task in queued:
        task.cancel()
    await asyncio.gather(*queued, return_exceptions=True)


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
