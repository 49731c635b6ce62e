"""The retry decision: a pure function of the attempt counters and the outcome.

Two budgets, on purpose. Errors (a retryable vendor code, a 5xx, a timeout) count as attempts and
are bounded by `max_attempts` with exponential backoff and jitter. Throttling is the cloud asking us
to slow down, not a fault of the server: it gives the attempt back and is bounded separately by
`max_throttled`, so a 429 storm never turns into server failures unless it outlasts that budget. A
delay the cloud asked for (Retry-After, "try again 1 minute later") always wins over backoff.
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
    max_throttled: int = 30  # throttled answers tolerated per sub-job
    throttle_base_delay: float = 5.0  # backoff base when a throttle names no delay

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_throttled < 0:
            raise ValueError("max_attempts must be >= 1 and max_throttled >= 0")
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
) -> Retry | GiveUp:
    """Retry (with when and the new counters) or give up (with the code and reason to record).

    `attempt` is the sub-job's counter including the try that produced `outcome`; `counted` says
    whether that try incremented it (a verification does not, so an error there counts here).
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
    count = throttles + 1
    if count > policy.max_throttled:
        reason = f"{outcome.reason or 'throttled'} (still throttled after {throttles} retries)"
        return GiveUp(outcome.code or "throttled", reason)
    delay = outcome.delay
    if delay is None:
        delay = backoff(
            policy.throttle_base_delay,
            policy.multiplier,
            policy.max_delay,
            count,
            policy.jitter,
            rand,
        )
    given_back = max(0, attempt - 1) if counted else attempt
    return Retry(delay=max(0.0, delay), attempt=given_back, throttles=count)


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
