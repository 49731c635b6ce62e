"""Throttling is bounded in time: a sub-job throttled for longer than its endpoint's deadline fails
with the cloud's code; without a Retry-After it waits about one window of its rate key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.config import EngineConfig
from jobs.decide import Context, Phase, decide
from jobs.outcomes import Accepted, RetryLater
from jobs.records import SubJobRecord
from jobs.retry import GiveUp, Retry, RetryPolicy, decide_retry, span
from jobs.states import Event, State
from jobs.testing import subjob_record

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HUAWEI_429 = RetryLater(
    throttled=True,
    code="Common.1503",
    reason="Api flow control Error because of too many requests.",
)
POLICY = RetryPolicy(throttle_deadline=900.0, jitter=0.5)


def test_the_default_deadline_is_15_minutes_and_no_count_bounds_throttling() -> None:
    policy = RetryPolicy()
    assert (policy.throttle_deadline, policy.max_throttled) == (900.0, None)
    verdict = decide_retry(policy, 1, 10_000, HUAWEI_429, 0.0, throttled_for=899.0, window=60.0)
    assert isinstance(verdict, Retry)


def test_throttled_past_the_deadline_fails_with_the_vendor_code() -> None:
    verdict = decide_retry(POLICY, 1, 7, HUAWEI_429, 0.0, throttled_for=900.0, window=60.0)
    assert verdict == GiveUp(
        "Common.1503",
        "Api flow control Error because of too many requests. (throttled for longer than 15 min)",
    )


@pytest.mark.parametrize(
    ("rand", "expected"),
    [(0.0, 60.0), (1.0, 30.0), (0.5, 45.0)],
)
def test_without_retry_after_the_wait_is_one_window_jittered_down(
    rand: float, expected: float
) -> None:
    """Huawei's 429 names no delay: wait about one window of the key (60 s here), never the
    blind doubling to 300 s that made permanent throttling last two hours."""
    for throttles in (0, 5, 29):
        verdict = decide_retry(POLICY, 1, throttles, HUAWEI_429, rand, window=60.0)
        assert verdict == Retry(expected, 0, throttles + 1)


def test_a_key_without_budget_falls_back_to_backoff() -> None:
    verdict = decide_retry(POLICY, 1, 2, HUAWEI_429, 0.0, window=None)
    assert verdict == Retry(20.0, 0, 3)  # 5 * 2**2


def test_no_wait_reaches_past_the_deadline() -> None:
    """The last retry comes at the deadline, whatever the window or the cloud's Retry-After."""
    near = decide_retry(POLICY, 1, 3, HUAWEI_429, 0.0, throttled_for=880.0, window=60.0)
    assert near == Retry(20.0, 0, 4)
    asked = RetryLater(delay=120.0, throttled=True, code="429")
    assert decide_retry(POLICY, 1, 3, asked, 0.0, throttled_for=850.0) == Retry(50.0, 0, 4)
    assert decide_retry(POLICY, 1, 3, asked, 0.0, throttled_for=10.0) == Retry(120.0, 0, 4)


def test_a_count_bound_still_applies_when_configured() -> None:
    policy = RetryPolicy(max_throttled=2)
    verdict = decide_retry(policy, 1, 2, HUAWEI_429, 0.0, window=60.0)
    assert isinstance(verdict, GiveUp) and verdict.reason.endswith("after 2 retries)")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(900.0, "15 min"), (5.0, "5s"), (90.0, "90s"), (7200.0, "2 h"), (2.5, "2.5s")],
)
def test_span(seconds: float, text: str) -> None:
    assert span(seconds) == text


def test_refuses_a_deadline_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="throttle_deadline"):
        RetryPolicy(throttle_deadline=0)
    with pytest.raises(ValueError, match="throttle_deadlines"):
        EngineConfig(throttle_deadlines={"ecs:": 0.0})


def test_each_endpoint_has_its_own_deadline() -> None:
    config = EngineConfig(throttle_deadlines={"ecs:": 30.0, "ecs-eu:": 60.0})
    assert config.retry_for("ecs:action").throttle_deadline == 30.0
    assert config.retry_for("ecs-eu:action").throttle_deadline == 60.0
    assert config.retry_for("bms:action").throttle_deadline == 900.0


# --- the sub-job keeps when its throttling began ----------------------------------------------


def _sub(**kw: object) -> SubJobRecord:
    times = {"not_before": NOW, "created_at": NOW, "updated_at": NOW}
    return subjob_record(
        **{"id": 1, "state": State.DISPATCHING, "rate_key": "ecs:action", **times, **kw}
    )


def _ctx(now: datetime, deadline: float = 300.0) -> Context:
    config = EngineConfig(throttle_deadlines={"ecs:": deadline})
    return Context(
        now=now,
        phase=Phase.SUBMIT,
        policy=config.retry,
        poll_interval=5.0,
        max_await=600.0,
        rand=lambda: 0.0,
        policy_for=config.retry_for,
        window=lambda key: 60.0 if key == "ecs:action" else None,
    )


def test_the_first_throttle_starts_the_clock_and_later_ones_keep_it() -> None:
    first = dict(decide(_sub(), HUAWEI_429, _ctx(NOW)).values)
    assert first["throttled_since"] == NOW
    assert first["not_before"] == NOW + timedelta(seconds=60)
    later = NOW + timedelta(seconds=120)
    again = dict(decide(_sub(throttled_since=NOW), HUAWEI_429, _ctx(later)).values)
    assert again["throttled_since"] == NOW


def test_the_endpoint_deadline_fails_the_subjob() -> None:
    late = NOW + timedelta(seconds=301)
    change = decide(_sub(throttled_since=NOW, throttles=5), HUAWEI_429, _ctx(late))
    assert change.event is Event.FAIL
    values = dict(change.values)
    assert values["error_code"] == "Common.1503"
    assert str(values["error_message"]).endswith("(throttled for longer than 5 min)")


def test_an_answer_that_is_not_a_throttle_ends_the_streak() -> None:
    later = NOW + timedelta(seconds=30)
    accepted = decide(_sub(throttled_since=NOW), Accepted("job-1"), _ctx(later))
    assert dict(accepted.values)["throttled_since"] is None
    error = RetryLater(reason="busy", code="Ecs.0603")
    retried = decide(_sub(throttled_since=NOW, attempt=1), error, _ctx(later))
    assert dict(retried.values)["throttled_since"] is None
