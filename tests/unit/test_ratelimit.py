"""The rate limiter on a fake clock: windows, FIFO order, budgets, reconfiguration, throttling."""

from __future__ import annotations

import asyncio
import sys

import pytest

from jobs.clock import FakeClock
from jobs.ratelimit import (
    ANSWER_MARGIN,
    PAUSE_FRACTION,
    RECOVERY_PERIODS,
    Budget,
    Headroom,
    RateLimiter,
    Unit,
)

KEY = "bms-prod:action"


async def settle() -> None:
    """Let every ready task run (the limiter's pump and the callers it woke)."""
    for _ in range(20):
        await asyncio.sleep(0)


class Caller:
    """Starts acquires as tasks and records, in order, which returned and when."""

    def __init__(self, limiter: RateLimiter, clock: FakeClock, key: str = KEY) -> None:
        self.limiter, self.clock, self.key = limiter, clock, key
        self.done: list[tuple[int, float]] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, servers: int = 1) -> asyncio.Task[None]:
        index = len(self.tasks)

        async def run() -> None:
            await self.limiter.acquire(self.key, servers)
            self.done.append((index, self.clock.monotonic()))

        task = asyncio.create_task(run())
        self.tasks.append(task)
        await settle()
        return task

    @property
    def order(self) -> list[int]:
        return [index for index, _ in self.done]

    def times(self) -> list[float]:
        return [t for _, t in self.done]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def limiter_with(clock: FakeClock, *budgets: Budget, margin: float = 0.5) -> RateLimiter:
    limiter = RateLimiter(clock, margin=margin)
    limiter.configure(KEY, budgets)
    return limiter


@pytest.mark.parametrize(
    ("limit", "period"), [(0, 1.0), (-1, 1.0), (1, 0.0), (1, -2.0), (1, float("inf"))]
)
def test_budget_rejects_nonsense(limit: int, period: float) -> None:
    with pytest.raises(ValueError, match="budget"):
        Budget(limit, period)


def test_margin_must_not_be_negative(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="margin"):
        RateLimiter(clock, margin=-0.1)


async def test_key_without_budget_never_waits(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    for _ in range(1000):
        await limiter.acquire("openstack:action", servers=7)
    assert clock.sleepers == 0
    assert limiter.headroom("openstack:action") == Headroom(sys.maxsize, sys.maxsize)
    assert limiter.state("openstack:action").waits == 0


async def test_burst_up_to_limit_then_waits_until_oldest_send_expires(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(3, 10.0))
    caller = Caller(limiter, clock)
    for _ in range(4):
        await caller.start()
    assert caller.order == [0, 1, 2]
    await clock.advance(10.49)
    assert caller.order == [0, 1, 2]
    await clock.advance(0.01)
    assert caller.order == [0, 1, 2, 3]
    assert caller.times()[3] == pytest.approx(10.5)


async def test_a_newcomer_also_waits_out_the_margin(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(1, 1.0), margin=0.3)
    await limiter.acquire(KEY)
    await clock.advance(1.1)  # past the period, inside the margin
    caller = Caller(limiter, clock)
    await caller.start()
    assert caller.order == []
    await clock.advance(0.2)
    assert caller.times() == pytest.approx([1.3])


async def test_window_slides_instead_of_resetting(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(3, 10.0))
    caller = Caller(limiter, clock)
    await caller.start()
    await caller.start()
    await clock.advance(5.0)
    for _ in range(4):
        await caller.start()
    assert caller.order == [0, 1, 2]
    await clock.advance(30.0)
    # Two slots free at 10.5 (the sends of t=0 expire), the next at 15.5 (the send of t=5).
    assert caller.times() == pytest.approx([0.0, 0.0, 5.0, 10.5, 10.5, 15.5])


async def test_many_waiters_are_served_in_arrival_order_by_one_sleeper(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(10, 1.0), margin=0.1)
    caller = Caller(limiter, clock)
    for _ in range(200):
        await caller.start()
    assert limiter.state(KEY).queued == 190
    assert clock.sleepers == 1
    for _ in range(25):
        await clock.advance(1.1)
        assert clock.sleepers <= 1
    assert caller.order == list(range(200))
    times = caller.times()
    assert times[10] == pytest.approx(1.1)
    assert times[199] == pytest.approx(19 * 1.1)


async def test_a_small_request_does_not_overtake_a_big_queued_one(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(10, 10.0, Unit.SERVERS))
    caller = Caller(limiter, clock)
    await caller.start(servers=5)
    await caller.start(servers=8)  # must wait for the 5 to expire
    await caller.start(servers=1)  # would fit now, but arrives after the 8
    assert caller.order == [0]
    await clock.advance(10.5)
    assert caller.order == [0, 1, 2]


async def test_requests_and_servers_budgets_both_hold(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(3, 10.0), Budget(10, 10.0, Unit.SERVERS))
    caller = Caller(limiter, clock)
    await caller.start(servers=4)
    await caller.start(servers=4)
    await caller.start(servers=4)  # 3rd request is allowed, 12 servers are not
    assert caller.order == [0, 1]
    assert limiter.headroom(KEY) == Headroom(requests=0, servers=0)  # someone is queued
    await clock.advance(10.5)
    assert caller.order == [0, 1, 2]
    await caller.start(servers=1)
    await caller.start(servers=0)  # a request with no server counts only as a request
    assert caller.order == [0, 1, 2, 3, 4]
    await caller.start(servers=0)  # 4th request within the window
    assert caller.order == [0, 1, 2, 3, 4]
    assert limiter.state(KEY).used == {Unit.REQUESTS: 3, Unit.SERVERS: 5}


async def test_request_bigger_than_a_servers_budget_is_rejected(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(50, 60.0), Budget(1000, 60.0, Unit.SERVERS))
    with pytest.raises(ValueError, match="split"):
        await limiter.acquire(KEY, servers=1001)
    with pytest.raises(ValueError, match="servers"):
        await limiter.acquire(KEY, servers=-1)
    await limiter.acquire(KEY, servers=1000)
    assert limiter.state(KEY).used[Unit.SERVERS] == 1000


async def test_headroom_counts_what_can_leave_now(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(50, 60.0), Budget(1000, 60.0, Unit.SERVERS))
    assert limiter.headroom(KEY) == Headroom(requests=50, servers=1000)
    await limiter.acquire(KEY, servers=300)
    await limiter.acquire(KEY, servers=200)
    assert limiter.headroom(KEY) == Headroom(requests=48, servers=500)
    await clock.advance(60.5)
    assert limiter.headroom(KEY) == Headroom(requests=50, servers=1000)
    only_requests = limiter_with(clock, Budget(5, 1.0))
    assert only_requests.headroom(KEY) == Headroom(requests=5, servers=sys.maxsize)
    assert RateLimiter(clock).headroom("unknown") == Headroom(sys.maxsize, sys.maxsize)


async def test_raising_a_limit_at_runtime_releases_waiters_at_once(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(2, 60.0))
    caller = Caller(limiter, clock)
    for _ in range(5):
        await caller.start()
    assert caller.order == [0, 1]
    limiter.configure(KEY, [Budget(4, 60.0)])
    await settle()
    assert caller.order == [0, 1, 2, 3]
    assert clock.monotonic() == 0.0
    limiter.configure(KEY, [])
    await settle()
    assert caller.order == [0, 1, 2, 3, 4]


async def test_lowering_a_limit_counts_what_was_already_sent(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(10, 60.0))
    for _ in range(5):
        await limiter.acquire(KEY)
    limiter.configure(KEY, [Budget(3, 60.0)])
    assert limiter.headroom(KEY).requests == 0
    caller = Caller(limiter, clock)
    await caller.start()
    await clock.advance(60.4)
    assert caller.order == []
    await clock.advance(0.1)
    assert caller.order == [0]


async def test_a_longer_period_counts_earlier_sends_for_the_new_period(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(3, 10.0), margin=0.0)
    for _ in range(3):
        await limiter.acquire(KEY)
    await clock.advance(5.0)
    limiter.configure(KEY, [Budget(3, 60.0)])
    caller = Caller(limiter, clock)
    await caller.start()
    await clock.advance(54.9)  # the old 10 s window is long gone, the new 60 s one is not
    assert caller.order == []
    await clock.advance(0.1)
    assert caller.times() == pytest.approx([60.0])


async def test_a_shorter_period_frees_earlier_sends_sooner(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(3, 60.0), margin=0.0)
    for _ in range(3):
        await limiter.acquire(KEY)
    caller = Caller(limiter, clock)
    await caller.start()
    limiter.configure(KEY, [Budget(3, 10.0)])
    await clock.advance(10.0)
    assert caller.times() == pytest.approx([10.0])


async def test_reconfigure_fails_queued_requests_that_can_no_longer_fit(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(10, 60.0, Unit.SERVERS))
    caller = Caller(limiter, clock)
    await caller.start(servers=10)
    big = await caller.start(servers=8)
    small = await caller.start(servers=2)
    limiter.configure(KEY, [Budget(5, 60.0, Unit.SERVERS)])
    await settle()
    with pytest.raises(ValueError, match="split"):
        await big
    assert not small.done()
    await clock.advance(60.5)
    assert caller.order == [0, 2]


async def test_cancelled_head_does_not_block_the_queue(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(10, 60.0, Unit.SERVERS))
    caller = Caller(limiter, clock)
    await caller.start(servers=5)
    head = await caller.start(servers=8)
    await caller.start(servers=3)
    head.cancel()
    await settle()
    assert head.cancelled()
    assert caller.order == [0, 2]  # without advancing time
    assert limiter.state(KEY).queued == 0


async def test_cancelled_waiters_in_the_middle_are_skipped(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(2, 1.0), margin=0.0)
    caller = Caller(limiter, clock)
    tasks = [await caller.start() for _ in range(12)]
    for task in tasks[3:9]:
        task.cancel()
    await settle()
    assert limiter.state(KEY).queued == 4
    await clock.advance(1.0)
    assert caller.order == [0, 1, 2, 9]
    await clock.advance(1.0)
    assert caller.order == [0, 1, 2, 9, 10, 11]


async def test_cancelling_every_waiter_stops_the_sleeper(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(1, 3600.0))
    await limiter.acquire(KEY)
    caller = Caller(limiter, clock)
    tasks = [await caller.start() for _ in range(100)]
    assert clock.sleepers == 1
    for task in tasks:
        task.cancel()
    await settle()
    assert clock.sleepers == 0
    assert limiter.state(KEY).queued == 0


async def test_retry_after_blocks_the_key_until_then(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(50, 60.0))
    await limiter.acquire(KEY)
    limiter.on_throttled(KEY, retry_after=7.0)
    state = limiter.state(KEY)
    assert state.throttled == 1
    assert state.penalty_until == pytest.approx(7.0)
    assert limiter.headroom(KEY) == Headroom(0, 0)
    caller = Caller(limiter, clock)
    await caller.start()
    await clock.advance(6.9)
    assert caller.order == []
    await clock.advance(0.2)
    assert caller.times() == pytest.approx([7.0])
    assert limiter.state(KEY).penalty_until is None


async def test_throttle_without_retry_after_pauses_halves_and_recovers(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(40, 10.0), margin=0.0)
    limiter.on_throttled(KEY, retry_after=None)
    pause = PAUSE_FRACTION * 10.0
    assert limiter.state(KEY).penalty_until == pytest.approx(pause)
    await clock.advance(pause)
    assert limiter.headroom(KEY).requests == 20
    # Linear recovery: from half to full in half of RECOVERY_PERIODS periods.
    full_after = 0.5 * RECOVERY_PERIODS * 10.0
    await clock.advance(full_after / 2)
    assert limiter.headroom(KEY).requests == 30
    await clock.advance(full_after / 2)
    assert limiter.headroom(KEY).requests == 40


async def test_throttled_key_sends_at_the_reduced_rate(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(40, 10.0), margin=0.0)
    limiter.on_throttled(KEY, retry_after=0.0)
    caller = Caller(limiter, clock)
    for _ in range(21):
        await caller.start()
    assert len(caller.done) == 20
    assert limiter.state(KEY).used[Unit.REQUESTS] == 20


async def test_many_throttled_answers_from_one_burst_cut_the_limit_once(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(40, 10.0), margin=0.0)
    for _ in range(30):
        limiter.on_throttled(KEY, retry_after=1.0)
    await clock.advance(1.0)
    assert limiter.headroom(KEY).requests == 20
    assert limiter.state(KEY).throttled == 30
    await clock.advance(10.0)  # a throttle a period later is a new overload: cut again
    limiter.on_throttled(KEY, retry_after=0.0)
    # Recovered from 0.5 to 0.75 in the 10 s since the pause ended, then halved: 40 * 0.375.
    assert limiter.headroom(KEY).requests == 15


async def test_backoff_never_starves_a_batch_that_fits_the_configured_limit(
    clock: FakeClock,
) -> None:
    limiter = limiter_with(clock, Budget(100, 10.0, Unit.SERVERS), margin=0.0)
    for _ in range(6):
        limiter.on_throttled(KEY, retry_after=0.0)
        await clock.advance(10.0)
    caller = Caller(limiter, clock)
    await caller.start(servers=100)  # alone in an empty window, although the limit is cut
    await caller.start(servers=1)
    assert caller.order == [0]
    await clock.advance(10.0)
    assert caller.order == [0, 1]


async def test_throttle_on_a_key_without_budget_pauses_it(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    limiter.on_throttled("openstack:action", retry_after=None)
    caller = Caller(limiter, clock, key="openstack:action")
    await caller.start()
    assert caller.order == []
    await clock.advance(1.0)
    assert caller.order == [0]


async def test_state_and_keys_report_the_counters(clock: FakeClock) -> None:
    limiter = RateLimiter(clock, margin=0.25)
    limiter.configure("b:action", [Budget(2, 60.0), Budget(1000, 60.0, Unit.SERVERS)])
    limiter.configure("a:jobs", [Budget(2000, 60.0)])
    caller = Caller(limiter, clock, key="b:action")
    for _ in range(3):
        await caller.start(servers=10)
    state = limiter.state("b:action")
    assert state.budgets == (Budget(2, 60.0), Budget(1000, 60.0, Unit.SERVERS))
    assert state.used == {Unit.REQUESTS: 2, Unit.SERVERS: 20}
    assert (state.queued, state.waits, state.throttled, state.penalty_until) == (1, 1, 0, None)
    assert limiter.keys() == ["a:jobs", "b:action"]
    empty = limiter.state("nowhere")
    assert (empty.budgets, empty.used, empty.queued) == ((), {}, 0)
    await clock.advance(61.0)
    assert limiter.state("b:action").used == {Unit.REQUESTS: 1, Unit.SERVERS: 10}


async def test_used_reports_the_longest_budget_of_each_unit(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(5, 1.0), Budget(100, 60.0), margin=0.0)
    for _ in range(5):
        await limiter.acquire(KEY)
    await clock.advance(2.0)
    assert limiter.state(KEY).used == {Unit.REQUESTS: 5}
    assert limiter.headroom(KEY).requests == 5


async def test_sending_counts_until_a_period_after_the_answer(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(2, 10.0), margin=0.5)
    answered = asyncio.Event()
    order: list[str] = []

    async def slow_call(name: str) -> None:
        async with limiter.sending(KEY):
            order.append(name)
            await answered.wait()

    first = asyncio.create_task(slow_call("a"))
    second = asyncio.create_task(slow_call("b"))
    await settle()
    caller = Caller(limiter, clock)
    await caller.start()
    assert limiter.state(KEY).used == {Unit.REQUESTS: 2}
    assert limiter.headroom(KEY).requests == 0
    await clock.advance(100.0)  # no answer yet: the two calls still count, however long
    assert caller.order == []
    assert clock.sleepers == 0  # waiting for an answer, not polling
    answered.set()
    await settle()
    await asyncio.gather(first, second)
    # The server has seen them by now: the margin after an answer is only ANSWER_MARGIN.
    await clock.advance(10.0)
    assert caller.order == []
    await clock.advance(ANSWER_MARGIN)
    assert caller.times() == pytest.approx([110.0 + ANSWER_MARGIN])
    assert order == ["a", "b"]


async def test_sending_starts_the_period_when_the_block_fails(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(1, 10.0), margin=0.0)

    async def dropped_call() -> None:
        async with limiter.sending(KEY, servers=3):
            await clock.advance(2.0)
            raise ConnectionError("dropped")

    with pytest.raises(ConnectionError):
        await dropped_call()
    caller = Caller(limiter, clock)
    await caller.start()
    await clock.advance(9.9)
    assert caller.order == []
    await clock.advance(0.1)
    assert caller.times() == pytest.approx([12.0])


async def test_done_without_a_held_request_is_an_error(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(5, 10.0))
    await limiter.acquire(KEY)
    with pytest.raises(ValueError, match="until_done"):
        limiter.done(KEY)


async def test_held_servers_count_in_headroom_and_state(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(10, 10.0), Budget(100, 10.0, Unit.SERVERS))
    await limiter.acquire(KEY, servers=30, until_done=True)
    await limiter.acquire(KEY, servers=20)
    await clock.advance(50.0)
    assert limiter.headroom(KEY) == Headroom(requests=9, servers=70)
    assert limiter.state(KEY).used == {Unit.REQUESTS: 1, Unit.SERVERS: 30}
    limiter.done(KEY, servers=30)
    assert limiter.state(KEY).used == {Unit.REQUESTS: 1, Unit.SERVERS: 30}
    await clock.advance(10.0 + ANSWER_MARGIN)
    assert limiter.headroom(KEY) == Headroom(requests=10, servers=100)


async def test_a_held_request_cancelled_after_its_grant_is_given_up(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(1, 10.0), margin=0.0)
    await limiter.acquire(KEY)
    waiter = asyncio.create_task(limiter.acquire(KEY, until_done=True))
    await settle()
    limiter.configure(KEY, [Budget(2, 10.0)])
    await asyncio.sleep(0)  # the restarted pump grants the waiter ...
    waiter.cancel()  # ... whose task is cancelled before it resumes to send
    with pytest.raises(asyncio.CancelledError):
        await waiter
    with pytest.raises(ValueError, match="until_done"):
        limiter.done(KEY)  # the limiter already gave the request up itself
    assert limiter.state(KEY).used == {Unit.REQUESTS: 2}
    await clock.advance(10.0)
    assert limiter.headroom(KEY).requests == 2


async def test_cancelling_a_refused_held_request_stays_a_cancellation(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(10, 60.0, Unit.SERVERS))
    await limiter.acquire(KEY, servers=10)
    waiter = asyncio.create_task(limiter.acquire(KEY, servers=8, until_done=True))
    await settle()
    limiter.configure(KEY, [Budget(5, 60.0, Unit.SERVERS)])  # refuses the waiter ...
    waiter.cancel()  # ... whose task is cancelled before it sees the refusal
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.state(KEY).used == {Unit.SERVERS: 10}


async def test_sent_and_answered_entries_expire_in_their_own_order(clock: FakeClock) -> None:
    limiter = limiter_with(clock, Budget(2, 10.0), margin=0.5)
    await limiter.acquire(KEY)  # counted until 10.5
    await limiter.acquire(KEY, until_done=True)
    await clock.advance(0.2)
    limiter.done(KEY)  # counted until 0.2 + 10 + ANSWER_MARGIN, before the first one
    caller = Caller(limiter, clock)
    await caller.start()
    await clock.advance(10.0 + ANSWER_MARGIN)
    assert caller.times() == pytest.approx([10.2 + ANSWER_MARGIN])
    await caller.start()
    await clock.advance(0.2)
    assert len(caller.done) == 1
    await clock.advance(0.1)
    assert caller.times() == pytest.approx([10.2 + ANSWER_MARGIN, 10.5])
