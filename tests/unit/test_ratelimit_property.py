"""Property tests of the rate limiter over random budgets and random acquire sequences.

The first property compares every grant time with a from-scratch model of "the earliest FIFO
schedule that keeps every window within its limit", so it catches both a limiter that sends too
much and one that waits longer than it must. The second adds requests held until their answer
(`sending`), cancellations and throttling answers, for which safety, order and liveness are
asserted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.clock import FakeClock
from jobs.ratelimit import ANSWER_MARGIN, Budget, RateLimiter, Unit

KEYS = ("k0", "k1")


@dataclass(frozen=True)
class Acquire:
    key: int
    servers: int
    held: bool = False  # `sending`: counted until period + margin after its answer


@dataclass(frozen=True)
class Advance:
    seconds: float


@dataclass(frozen=True)
class Cancel:
    pick: int


@dataclass(frozen=True)
class Throttle:
    key: int
    retry_after: float | None


@dataclass(frozen=True)
class Answer:
    pick: int


Step = Acquire | Advance | Cancel | Throttle | Answer


@dataclass
class Call:
    key: str
    servers: int
    arrival: float
    held: bool
    answer: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    sent: float | None = None
    ended: float | None = None  # when a held call's answer came (or it was given up)


@dataclass
class Run:
    calls: list[Call] = field(default_factory=list)
    returned: dict[str, list[int]] = field(default_factory=dict)  # key -> call indexes, in order


def units(budget: Budget, servers: int) -> int:
    return 1 if budget.unit is Unit.REQUESTS else servers


def max_servers(budgets: list[Budget]) -> int:
    return min((b.limit for b in budgets if b.unit is Unit.SERVERS), default=5)


budget_st = st.builds(
    Budget,
    limit=st.integers(1, 8),
    period=st.sampled_from([0.5, 1.0, 2.0, 5.0]),
    unit=st.sampled_from(list(Unit)),
)
budgets_st = st.lists(budget_st, min_size=1, max_size=3)
margin_st = st.sampled_from([0.0, 0.01, 0.1, 0.3])
advance_st = st.builds(
    Advance, st.sampled_from([0.0, 0.01, 0.05, 0.3, 0.5, 1.0, 1.1, 2.0, 2.5]) | st.floats(0.0, 3.0)
)


def acquire_st(limits: list[list[Budget]], held: bool) -> st.SearchStrategy[Acquire]:
    return st.integers(0, len(limits) - 1).flatmap(
        lambda k: st.builds(
            Acquire,
            st.just(k),
            st.integers(0, max_servers(limits[k])),
            st.booleans() if held else st.just(False),
        )
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def play(limits: list[list[Budget]], margin: float, steps: list[Step]) -> Run:
    """Run the steps on a fake clock; every call records when its acquire returned."""
    clock = FakeClock()
    limiter = RateLimiter(clock, margin=margin)
    for key, budgets in zip(KEYS, limits, strict=False):
        limiter.configure(key, budgets)
    run = Run(returned={key: [] for key in KEYS})

    async def call(index: int) -> None:
        item = run.calls[index]
        if not item.held:
            await limiter.acquire(item.key, item.servers)
            item.sent = clock.monotonic()
            run.returned[item.key].append(index)
            return
        try:
            async with limiter.sending(item.key, item.servers):
                item.sent = clock.monotonic()
                run.returned[item.key].append(index)
                await item.answer.wait()
        finally:
            if item.sent is not None:
                item.ended = clock.monotonic()

    for step in steps:
        await apply(step, run, limiter, clock, call)
        await settle()
        assert clock.sleepers <= len(limits), "one sleeper per key at most"
    for _ in range(1000):
        if all(c.task is not None and c.task.done() for c in run.calls):
            break
        for c in run.calls:
            c.answer.set()
        await settle()
        await clock.advance(5.0)
    for c in run.calls:
        assert c.task is not None and c.task.done(), "every call ends"
        assert c.task.cancelled() or c.sent is not None
    return run


async def apply(
    step: Step,
    run: Run,
    limiter: RateLimiter,
    clock: FakeClock,
    call: Callable[[int], Coroutine[None, None, None]],
) -> None:
    if isinstance(step, Advance):
        await clock.advance(step.seconds)
    elif isinstance(step, Acquire):
        run.calls.append(Call(KEYS[step.key], step.servers, clock.monotonic(), step.held))
        run.calls[-1].task = asyncio.create_task(call(len(run.calls) - 1))
    elif isinstance(step, Cancel) and run.calls:
        task = run.calls[step.pick % len(run.calls)].task
        assert task is not None
        task.cancel()
    elif isinstance(step, Throttle):
        limiter.on_throttled(KEYS[step.key], step.retry_after)
    elif isinstance(step, Answer):
        waiting = [c for c in run.calls if c.sent is not None and not c.answer.is_set()]
        if waiting:
            waiting[step.pick % len(waiting)].answer.set()


def earliest_schedule(
    calls: list[tuple[float, int]], budgets: list[Budget], margin: float
) -> list[float]:
    """The model: each call in order, sent at the first instant every window has room."""
    sent: list[tuple[float, int]] = []
    for arrival, servers in calls:
        t = max(arrival, sent[-1][0]) if sent else arrival
        while True:
            later = t
            for budget in budgets:
                need, span = units(budget, servers), budget.period + margin
                live = sorted((s, units(budget, n)) for s, n in sent if s + span > t)
                used = sum(u for _, u in live)
                for s, u in live:
                    if need == 0 or used + need <= budget.limit:
                        break
                    used -= u
                    later = max(later, s + span)
            if later == t:
                break
            t = later
        sent.append((t, servers))
    return [t for t, _ in sent]


def assert_windows_hold(calls: list[Call], budgets: list[Budget], margin: float) -> None:
    """The documented guarantees.

    A call counts from its grant until `period + margin` after the grant (`acquire`) or until
    `period + min(margin, ANSWER_MARGIN)` after its answer (`sending`); at no instant may the
    calls counted carry more than `limit` units.
    For plain acquires with ``margin > 0`` that covers any closed window of length `period`.
    """
    answer_margin = min(margin, ANSWER_MARGIN)
    for budget in budgets:
        spans = [
            (c.sent, c.ended + (budget.period + answer_margin), c.servers)
            if c.held and c.ended is not None
            else (c.sent, c.sent + (budget.period + margin), c.servers)
            for c in calls
            if c.sent is not None and (c.ended is not None or not c.held)
        ]
        for start, _, _ in spans:
            inside = sum(units(budget, n) for s, stop, n in spans if s <= start < stop)
            assert inside <= budget.limit, (budget, start, inside)
        plain = [(c.sent, c.servers) for c in calls if c.sent is not None and not c.held]
        for start, _ in plain if margin > 0 else []:
            closed = [n for s, n in plain if start <= s <= start + budget.period]
            assert sum(units(budget, n) for n in closed) <= budget.limit


@st.composite
def scenarios(draw: st.DrawFn, with_faults: bool) -> tuple[list[list[Budget]], float, list[Step]]:
    limits = draw(st.lists(budgets_st, min_size=1, max_size=2))
    kinds = [acquire_st(limits, with_faults), acquire_st(limits, with_faults), advance_st]
    if with_faults:
        kinds.append(st.builds(Answer, st.integers(0, 100)))
        kinds.append(st.builds(Cancel, st.integers(0, 100)))
        retry = st.none() | st.sampled_from([0.0, 0.2, 1.5])
        kinds.append(st.builds(Throttle, st.integers(0, len(limits) - 1), retry))
    steps = draw(st.lists(st.one_of(kinds), max_size=40))
    return limits, draw(margin_st), steps


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenarios(with_faults=False))
def test_grants_match_the_earliest_fifo_schedule(
    scenario: tuple[list[list[Budget]], float, list[Step]],
) -> None:
    limits, margin, steps = scenario
    run = asyncio.run(play(limits, margin, steps))
    for key, budgets in zip(KEYS, limits, strict=False):
        mine = [i for i, c in enumerate(run.calls) if c.key == key]
        assert run.returned[key] == mine, "FIFO per key"
        got = [run.calls[i].sent for i in mine]
        want = earliest_schedule(
            [(run.calls[i].arrival, run.calls[i].servers) for i in mine], budgets, margin
        )
        assert all(g is not None and abs(g - w) < 1e-9 for g, w in zip(got, want, strict=True)), (
            got,
            want,
        )
        assert_windows_hold([run.calls[i] for i in mine], budgets, margin)


@SETTINGS
@given(scenarios(with_faults=True))
def test_cancels_and_throttles_never_break_windows_or_order(
    scenario: tuple[list[list[Budget]], float, list[Step]],
) -> None:
    limits, margin, steps = scenario
    run = asyncio.run(play(limits, margin, steps))
    for key, budgets in zip(KEYS, limits, strict=False):
        sent = [i for i, c in enumerate(run.calls) if c.key == key and c.sent is not None]
        assert run.returned[key] == sent, "FIFO among the calls that were not cancelled"
        assert_windows_hold([run.calls[i] for i in sent], budgets, margin)
