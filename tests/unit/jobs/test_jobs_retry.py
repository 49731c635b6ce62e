"""The retry decision, as a table: (counters, outcome, randomness) -> retry when, or give up."""

from __future__ import annotations

import pytest

from jobs.outcomes import Failed, RetryLater
from jobs.retry import GiveUp, Retry, RetryPolicy, backoff, decide_retry

POLICY = RetryPolicy(
    max_attempts=3,
    base_delay=2.0,
    multiplier=2.0,
    max_delay=60.0,
    jitter=0.5,
    max_throttled=4,
    throttle_base_delay=5.0,
)


@pytest.mark.parametrize(
    ("attempt", "throttles", "outcome", "rand", "expected"),
    [
        # a permanent error gives up at once, with the vendor's code and reason
        (1, 0, Failed("Ecs.0114", "flavor not found"), 0.0, GiveUp("Ecs.0114", "flavor not found")),
        # retryable errors back off exponentially; rand=0 -> no jitter taken off
        (1, 0, Failed("Ecs.0603", "busy", retryable=True), 0.0, Retry(2.0, 1, 0)),
        (2, 0, Failed("Ecs.0603", "busy", retryable=True), 0.0, Retry(4.0, 2, 0)),
        # jitter takes up to half off
        (2, 0, Failed("Ecs.0603", "busy", retryable=True), 1.0, Retry(2.0, 2, 0)),
        # the third failed attempt is the last one
        (
            3,
            0,
            Failed("Ecs.0603", "busy", retryable=True),
            0.0,
            GiveUp("Ecs.0603", "busy (gave up after 3 attempts)"),
        ),
        # a delay the cloud asked for wins over backoff
        (1, 0, RetryLater(delay=60.0, reason="try again 1 minute later"), 0.7, Retry(60.0, 1, 0)),
        (
            3,
            0,
            RetryLater(reason="timeout", code="transient"),
            0.0,
            GiveUp("transient", "timeout (gave up after 3 attempts)"),
        ),
        # throttling gives the attempt back and is counted on its own
        (1, 0, RetryLater(delay=12.5, throttled=True, code="Common.1503"), 0.3, Retry(12.5, 0, 1)),
        (3, 2, RetryLater(throttled=True), 0.0, Retry(20.0, 2, 3)),  # 5 * 2**2
        (3, 3, RetryLater(throttled=True), 1.0, Retry(20.0, 2, 4)),  # 5 * 2**3 halved
        # ... until the throttle budget runs out: then it is a failure, with the code
        (
            1,
            4,
            RetryLater(throttled=True, code="Common.0024", reason="busy"),
            0.0,
            GiveUp("Common.0024", "busy (still throttled after 4 retries)"),
        ),
    ],
)
def test_decide_retry(
    attempt: int,
    throttles: int,
    outcome: RetryLater | Failed,
    rand: float,
    expected: Retry | GiveUp,
) -> None:
    assert decide_retry(POLICY, attempt, throttles, outcome, rand) == expected


def test_a_throttle_never_fails_a_server_before_its_budget_is_spent() -> None:
    attempt, throttles = 1, 0
    for _ in range(POLICY.max_throttled):
        verdict = decide_retry(POLICY, attempt, throttles, RetryLater(throttled=True), 0.5)
        assert isinstance(verdict, Retry)
        attempt, throttles = verdict.attempt + 1, verdict.throttles  # the next send counts again
    assert attempt == 1  # every throttled try was given back
    assert isinstance(
        decide_retry(POLICY, attempt, throttles, RetryLater(throttled=True), 0.5), GiveUp
    )


def test_an_uncounted_try_counts_its_error() -> None:
    """A verification does not increment the attempt at claim: its errors must still be bounded."""
    verdict = decide_retry(POLICY, 0, 0, RetryLater(reason="read failed"), 0.0, counted=False)
    assert verdict == Retry(2.0, 1, 0)
    assert isinstance(decide_retry(POLICY, 2, 0, RetryLater(), 0.0, counted=False), GiveUp)


@pytest.mark.parametrize(
    ("n", "rand", "expected"),
    [
        (1, 0.0, 2.0),
        (2, 0.0, 4.0),
        (5, 0.0, 32.0),
        (6, 0.0, 60.0),
        (200, 0.0, 60.0),
        (6, 1.0, 30.0),
        (6, 2.0, 30.0),
    ],
)
def test_backoff_is_capped_and_jittered(n: int, rand: float, expected: float) -> None:
    assert backoff(2.0, 2.0, 60.0, n, 0.5, rand) == expected


def test_policies_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.5)
