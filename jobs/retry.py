"""The retry decision: a pure function of the attempt counters and the outcome.

Two budgets, on purpose. Errors (a retryable vendor code, a 5xx, a timeout) count as attempts and
are bounded by `max_attempts` with exponential backoff and jitter. Throttling is the cloud asking us
to slow down, not a fault of the server: it gives the attempt back and is bounded separately, in
time: a sub-job that keeps being throttled for longer than `throttle_deadline` seconds fails with
the cloud's code and "throttled for longer than ...", so a 429 storm never turns into server
failures unless it outlasts the deadline, and permanent throttling ends within it.

A delay the cloud asked for (Retry-After, "try again 1 minute later") always wins over backoff.
Without one, a throttled sub-job waits about one window of its rate key (the longest period of its
budgets, jittered down to half of it): by then the cloud's count of the key has rolled over. A key
without budgets falls back to capped exponential backoff from `throttle_base_delay`. No throttle
wait reaches past the deadline: the last retry comes at it, and a throttle then is the failure.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.outcomes import Failed, RetryLater


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # sends per step that may end in an error before giving up
    base_delay: float = 2.0  # seconds before the first retry
    multiplier: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.5  # the delay is drawn from [d * (1 - jitter), d]
    max_throttled: int | None = None  # throttled answers tolerated per sub-job (None: any)
    throttle_base_delay: float = 5.0  # backoff base when a throttle names no delay nor window
    throttle_deadline: float = 900.0  # seconds a sub-job may keep being throttled

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or (self.max_throttled is not None and self.max_throttled < 0):
            raise ValueError("max_attempts must be >= 1 and max_throttled >= 0")
        if self.throttle_deadline <= 0:
            raise ValueError("throttle_deadline must be > 0")
        if not 0.0 <= self.jitter <= 1.0 or self.base_delay < 0 or self.multiplier < 1:
            raise ValueError("jitter in [0, 1], base_delay >= 0, multiplier >= 1")


@dataclass(frozen=True)
class Retry:
    delay: float  # seconds until the sub-job is eligible again
    attempt: int  # the attempt counter to store
    throttles: int  # the throttle counter to store


@dataclass(frozen=True)
class GiveUp:
    code: str
    reason: str


def backoff(
    base: float, multiplier: float, cap: float, n: int, jitter: float, rand: float
) -> float:
    """Delay before retry number `n` (1-based): capped exponential, minus up to `jitter` of it."""
    exponent = max(0, n - 1)
    raw = cap if exponent > 64 else min(cap, base * multiplier**exponent)
    return raw * (1.0 - jitter * min(max(rand, 0.0), 1.0))


def decide_retry(
    policy: RetryPolicy,
    attempt: int,
    throttles: int,
    outcome: RetryLater | Failed,
    rand: float,
    *,
    counted: bool = True,
    throttled_for: float = 0.0,
    window: float | None = None,
) -> Retry | GiveUp:
    """Retry (with when and the new counters) or give up (with the code and reason to record).

    `attempt` is the sub-job's counter including the try that produced `outcome`; `counted` says
    whether that try incremented it (a verification does not, so an error there counts here).
    `throttled_for` is how long the sub-job has been throttled without a break (0 at the first
    throttle); `window` the longest budget period of its rate key (None: the key has no budget).
    """
    if isinstance(outcome, Failed):
        if not outcome.retryable:
            return GiveUp(outcome.code, outcome.reason)
        tries = attempt if counted else attempt + 1
        return _error_retry(policy, tries, throttles, outcome.code, outcome.reason, None, rand)
    if not outcome.throttled:
        tries = attempt if counted else attempt + 1
        code = outcome.code or "retry_exhausted"
        return _error_retry(policy, tries, throttles, code, outcome.reason, outcome.delay, rand)
    return _throttle_retry(
        policy, attempt, throttles, outcome, rand, counted, throttled_for, window
    )


def span(seconds: float) -> str:
    """`90s`, `15 min`, `2 h`: a duration as people write it in a reason."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g}s"


def _throttle_retry(
    policy: RetryPolicy,
    attempt: int,
    throttles: int,
    outcome: RetryLater,
    rand: float,
    counted: bool,
    throttled_for: float,
    window: float | None,
) -> Retry | GiveUp:
    code, why = outcome.code or "throttled", outcome.reason or "throttled"
    count = throttles + 1
    if policy.max_throttled is not None and count > policy.max_throttled:
        return GiveUp(code, f"{why} (still throttled after {throttles} retries)")
    remaining = policy.throttle_deadline - max(0.0, throttled_for)
    if remaining <= 0:
        return GiveUp(code, f"{why} (throttled for longer than {span(policy.throttle_deadline)})")
    delay = outcome.delay
    if delay is None and window is not None and window > 0:
        delay = window * (1.0 - policy.jitter * min(max(rand, 0.0), 1.0))
    elif delay is None:
        delay = backoff(
            policy.throttle_base_delay,
            policy.multiplier,
            policy.max_delay,
            count,
            policy.jitter,
            rand,
        )
    given_back = max(0, attempt - 1) if counted else attempt
    return Retry(delay=min(max(0.0, delay), remaining), attempt=given_back, throttles=count)


def _error_retry(
    policy: RetryPolicy,
    attempt: int,
    throttles: int,
    code: str,
    reason: str,
    delay: float | None,
    rand: float,
) -> Retry | GiveUp:
    if attempt >= policy.max_attempts:
        return GiveUp(code, f"{reason} (gave up after {attempt} attempts)".lstrip())
    if delay is None:
        delay = backoff(
            policy.base_delay,
            policy.multiplier,
            policy.max_delay,
            max(1, attempt),
            policy.jitter,
            rand,
        )
    return Retry(delay=max(0.0, delay), attempt=attempt, throttles=throttles)
