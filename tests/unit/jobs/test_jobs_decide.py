"""From outcomes to changes, per phase: what each cloud answer does to a sub-job."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from jobs.decide import (
    AWAIT_TIMEOUT,
    EXECUTOR_ERROR,
    NO_EVIDENCE,
    SPLIT_REJECTED,
    Context,
    Phase,
    decide,
    decide_batch,
    summarize,
)
from jobs.outcomes import (
    Accepted,
    Advance,
    Completed,
    Failed,
    Noop,
    Outcome,
    Resubmit,
    RetryLater,
    Split,
    StillRunning,
    Unknown,
)
from jobs.records import Batch, Change, SubJobRecord
from jobs.retry import RetryPolicy
from jobs.states import Event, InvalidTransition, State
from jobs.testing import subjob_record

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def sub(i: int = 1, state: State = State.DISPATCHING, **kw: object) -> SubJobRecord:
    times = {"not_before": NOW, "created_at": NOW, "updated_at": NOW}
    fields = {"id": i, "seq": i, "target_id": f"s{i}", "state": state, "call_id": 7, **times}
    return subjob_record(**{**fields, **kw})


def ctx(phase: Phase = Phase.SUBMIT, rand: float = 0.0) -> Context:
    return Context(
        now=NOW,
        phase=phase,
        policy=RetryPolicy(max_attempts=3, base_delay=2.0),
        poll_interval=5.0,
        max_await=600.0,
        rand=lambda: rand,
    )


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def vals(change: Change) -> dict[str, object]:
    return dict(change.values)


def test_accepted_records_the_job_and_schedules_the_first_poll() -> None:
    change = decide(sub(), Accepted("job-1", "req-1"), ctx())
    assert (change.event, change.from_state) == (Event.ACCEPT, State.DISPATCHING)
    assert vals(change) == {
        "cloud_job_id": "job-1",
        "request_id": "req-1",
        "accepted_at": NOW,
        "not_before": at(5.0),
        "verify_first": False,
        "begun": True,  # the cloud took a call: a cancel lets the action finish
    }


@pytest.mark.parametrize(("passed_over", "begun"), [(False, True), (True, None)])
def test_a_step_passed_over_without_a_call_does_not_begin_the_action(
    passed_over: bool, begun: bool | None
) -> None:
    change = decide(sub(), Advance(1, passed_over=passed_over), ctx(Phase.POLL))
    assert change.event is Event.ADVANCE
    assert vals(change).get("begun") is begun


def test_accepted_keeps_the_executors_memo() -> None:
    change = decide(sub(), Accepted("j", poll_after=1.0, memo={"was": "running"}), ctx())
    assert vals(change)["memo"] == {"was": "running"}
    assert vals(change)["not_before"] == at(1.0)


@pytest.mark.parametrize(
    ("phase", "state", "step", "event"),
    [
        (Phase.SUBMIT, State.DISPATCHING, 0, Event.NOOP),  # nothing was done: SKIPPED
        (Phase.VERIFY, State.DISPATCHING, 0, Event.NOOP),
        (Phase.SUBMIT, State.DISPATCHING, 2, Event.COMPLETE),  # earlier steps did something
        (Phase.POLL, State.AWAITING, 0, Event.COMPLETE),  # the call was accepted: it happened
    ],
)
def test_noop_is_skipped_only_when_nothing_happened(
    phase: Phase, state: State, step: int, event: Event
) -> None:
    change = decide(sub(state=state, step=step), Noop("already stopped"), ctx(phase))
    assert change.event is event
    assert vals(change)["reason"] == "already stopped"


def test_poll_still_running_reschedules_without_a_transition() -> None:
    awaiting = sub(state=State.AWAITING, accepted_at=NOW - timedelta(seconds=30))
    change = decide(awaiting, StillRunning(poll_after=2.0), ctx(Phase.POLL))
    assert change.event is None
    assert vals(change) == {"not_before": at(2.0)}


def test_poll_that_cannot_read_the_job_reads_again_and_sends_nothing() -> None:
    awaiting = sub(state=State.AWAITING, accepted_at=NOW)
    change = decide(awaiting, RetryLater(delay=9.0, reason="502"), ctx(Phase.POLL))
    assert change.event is None
    assert vals(change) == {"not_before": at(9.0)}


def test_the_next_poll_is_due_an_interval_after_the_poll_left_not_after_its_answer() -> None:
    awaiting = sub(state=State.AWAITING, accepted_at=NOW)
    left = replace(ctx(Phase.POLL), sent=NOW - timedelta(seconds=1.5))
    assert vals(decide(awaiting, StillRunning(), left)) == {"not_before": at(3.5)}
    assert vals(decide(awaiting, StillRunning(poll_after=2.0), left)) == {"not_before": at(0.5)}


def test_a_poll_that_took_longer_than_the_interval_is_followed_at_once_never_before_its_answer() -> (
    None
):
    awaiting = sub(state=State.AWAITING, accepted_at=NOW)
    slow = replace(ctx(Phase.POLL), sent=NOW - timedelta(seconds=7.0))
    assert vals(decide(awaiting, StillRunning(), slow)) == {"not_before": NOW}


def test_a_failed_poll_waits_its_delay_from_the_failure_not_from_when_it_left() -> None:
    awaiting = sub(state=State.AWAITING, accepted_at=NOW)
    failed = replace(ctx(Phase.POLL), sent=NOW - timedelta(seconds=8.0))
    change = decide(awaiting, RetryLater(delay=9.0, reason="502"), failed)
    assert vals(change) == {"not_before": at(9.0)}


def test_an_endless_job_fails_after_max_await() -> None:
    awaiting = sub(state=State.AWAITING, accepted_at=NOW - timedelta(seconds=601))
    change = decide(awaiting, StillRunning(), ctx(Phase.POLL))
    assert (change.event, change.code) == (Event.FAIL, AWAIT_TIMEOUT)


def test_a_failed_cloud_job_that_is_retryable_is_sent_again() -> None:
    awaiting = sub(state=State.AWAITING, cloud_job_id="j", accepted_at=NOW)
    change = decide(awaiting, Failed("Ecs.0603", "busy", retryable=True), ctx(Phase.POLL))
    assert change.event is Event.RETRY
    assert vals(change)["verify_first"] is False
    assert vals(change)["cloud_job_id"] is None
    assert vals(change)["error_code"] == "Ecs.0603"


def test_a_permanent_failure_keeps_the_vendor_code_and_message() -> None:
    change = decide(sub(), Failed("Ecs.0114", "flavor missing"), ctx())
    assert (change.event, change.code, change.message) == (Event.FAIL, "Ecs.0114", "flavor missing")
    assert vals(change) == {"error_code": "Ecs.0114", "error_message": "flavor missing"}


def test_throttling_retries_later_without_spending_an_attempt() -> None:
    change = decide(sub(attempt=2), RetryLater(delay=30.0, throttled=True), ctx())
    assert change.event is Event.RETRY
    assert vals(change)["not_before"] == at(30.0)
    assert (vals(change)["attempt"], vals(change)["throttles"]) == (1, 1)


def test_a_send_that_may_have_reached_the_cloud_is_verified_before_resending() -> None:
    change = decide(sub(), RetryLater(reason="connection dropped", maybe_sent=True), ctx())
    assert change.event is Event.RETRY
    assert vals(change)["verify_first"] is True


def test_a_verification_that_fails_stays_unverified() -> None:
    change = decide(sub(verify_first=True, attempt=0), RetryLater(reason="read"), ctx(Phase.VERIFY))
    assert change.event is Event.RETRY
    assert vals(change)["verify_first"] is True
    assert vals(change)["attempt"] == 1


def test_verification_that_finds_nothing_allows_a_resend() -> None:
    change = decide(sub(verify_first=True), Resubmit("not found"), ctx(Phase.VERIFY))
    assert change.event is Event.RESUBMIT
    assert vals(change)["verify_first"] is False
    assert vals(change)["not_before"] == NOW


def test_resubmit_from_a_plain_submit_is_a_bounded_retry() -> None:
    change = decide(sub(attempt=3), Resubmit("lost"), ctx(Phase.SUBMIT))
    assert change.event is Event.FAIL


def test_advance_moves_to_the_next_step_with_fresh_counters() -> None:
    change = decide(
        sub(state=State.AWAITING, attempt=2, throttles=3, cloud_job_id="j"),
        Advance(next_step=1, delay=3.0, rate_key="k2", batch_key="b2", memo={"was": "on"}),
        ctx(Phase.POLL),
    )
    assert change.event is Event.ADVANCE
    v = vals(change)
    assert (v["step"], v["attempt"], v["throttles"], v["cloud_job_id"]) == (1, 0, 0, None)
    assert (v["rate_key"], v["batch_key"], v["memo"]) == ("k2", "b2", {"was": "on"})
    assert v["not_before"] == at(3.0)


def test_advance_must_move_forward() -> None:
    with pytest.raises(ValueError, match="Advance"):
        decide(sub(step=2), Advance(next_step=2), ctx())


def test_outcomes_the_state_machine_forbids_are_refused() -> None:
    with pytest.raises(InvalidTransition):
        decide(sub(state=State.PENDING), Completed(), ctx())


def batch(n: int, key: str = "b") -> Batch:
    subs = tuple(sub(i, batch_key=key) for i in range(1, n + 1))
    return Batch(
        operation_id="op",
        kind="stop",
        step=0,
        rate_key="k",
        batch_key=key,
        params={},
        subjobs=subs,
        call_id=7,
    )


def test_a_split_without_culprits_bisects_the_batch() -> None:
    b = batch(5)
    changes = decide_batch(b, {s.id: Split(reason="bad server") for s in b.subjobs}, ctx())
    assert {c.event for c in changes} == {Event.SPLIT}
    keys = [vals(c)["batch_key"] for c in changes]
    assert keys == ["b|a", "b|a", "b|b", "b|b", "b|b"]
    assert all(vals(c)["attempt"] == 0 for c in changes)  # the rejected send is given back


def test_a_split_with_culprits_isolates_them_and_resends_the_rest_together() -> None:
    b = batch(4)
    outcome = Split(culprits=frozenset({"s2"}), reason="Ecs.0605 locked")
    changes = decide_batch(b, {s.id: outcome for s in b.subjobs}, ctx())
    keys = {c.target_id: vals(c).get("batch_key") for c in changes}
    assert keys == {"s1": None, "s2": "b|solo:s2", "s3": None, "s4": None}
    assert all(c.event is Event.SPLIT for c in changes)


def test_a_lone_sub_job_that_is_rejected_fails() -> None:
    b = batch(1, key="b|solo:s1")
    [change] = decide_batch(b, {1: Split(reason="locked")}, ctx())
    assert (change.event, change.code) == (Event.FAIL, SPLIT_REJECTED)


def test_an_executor_exception_is_treated_as_maybe_sent() -> None:
    changes = decide_batch(batch(2), RuntimeError("boom"), ctx())
    assert [c.event for c in changes] == [Event.RETRY, Event.RETRY]
    assert all(vals(c)["verify_first"] is True for c in changes)
    assert changes[0].code == EXECUTOR_ERROR


def test_a_missing_outcome_is_treated_as_maybe_sent() -> None:
    b = batch(2)
    changes = decide_batch(b, {1: Completed()}, ctx())
    assert [c.event for c in changes] == [Event.COMPLETE, Event.RETRY]
    assert vals(changes[1])["verify_first"] is True


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ({1: Accepted("j"), 2: Accepted("j")}, ("accepted", None, None)),
        ({1: Failed("E.1", "no"), 2: Failed("E.1", "no")}, ("failed", "E.1", "no")),
        ({1: Accepted("j"), 2: Failed("E.1", "no")}, ("mixed", None, None)),
        ({}, ("empty", None, None)),
        ({1: Unknown(), 2: Unknown()}, ("unknown", NO_EVIDENCE, Unknown().reason)),
        ({1: Unknown(), 2: Completed()}, ("mixed", None, None)),
    ],
)
def test_call_summary(
    outcomes: dict[int, Outcome], expected: tuple[str, str | None, str | None]
) -> None:
    assert summarize(outcomes) == expected
    assert summarize(ValueError("x"))[0:2] == ("error", EXECUTOR_ERROR)


@pytest.mark.parametrize(
    "outcome",
    [
        RetryLater(reason="503", on_give_up=Advance(2, rate_key="k:revert", reason="revert")),
        Failed("E", "locked", retryable=True, on_give_up=Advance(2, reason="revert")),
    ],
)
def test_a_give_up_with_a_fallback_runs_it_instead_of_failing(outcome: RetryLater | Failed) -> None:
    last = decide(sub(attempt=5), outcome, ctx())  # the default policy allows 5 sends
    assert (last.event, vals(last)["step"]) == (Event.ADVANCE, 2)
    before = decide(sub(attempt=1), outcome, ctx())
    assert before.event is Event.RETRY  # retries first, as without a fallback


UNKNOWN_REASON = "the call may have acted; the cloud keeps no record"


@pytest.mark.parametrize(
    ("phase", "state"),
    [
        (Phase.SUBMIT, State.DISPATCHING),
        (Phase.VERIFY, State.DISPATCHING),
        (Phase.POLL, State.AWAITING),
    ],
)
def test_unknown_ends_the_sub_job_unknown_with_the_reason_shown_as_a_failure_is(
    phase: Phase, state: State
) -> None:
    change = decide(sub(state=state), Unknown(), ctx(phase))
    assert (change.event, change.from_state) == (Event.NO_EVIDENCE, state)
    assert (change.code, change.message) == (NO_EVIDENCE, UNKNOWN_REASON)  # the event row
    assert vals(change) == {
        "error_code": NO_EVIDENCE,
        "error_message": UNKNOWN_REASON,
        "reason": UNKNOWN_REASON,
        "verify_first": True,  # a retry that takes it reads the cloud before sending again
    }


def test_unknown_keeps_the_executors_own_reason() -> None:
    change = decide(sub(), Unknown("reboot: no instance actions on this cloud"), ctx())
    assert vals(change)["error_message"] == "reboot: no instance actions on this cloud"


def test_unknown_is_never_a_retry_whatever_the_attempts_left() -> None:
    changes = decide_batch(batch(3), {1: Unknown(), 2: Completed(), 3: Unknown()}, ctx())
    assert [c.event for c in changes] == [Event.NO_EVIDENCE, Event.COMPLETE, Event.NO_EVIDENCE]


def test_unknown_from_a_pending_sub_job_is_refused() -> None:
    with pytest.raises(InvalidTransition):
        decide(sub(state=State.PENDING), Unknown(), ctx())
