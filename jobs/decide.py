"""From executor outcomes to state changes: a pure function, the heart of the engine's semantics.

Three phases share one table (`jobs.states`): SUBMIT (a claimed batch was sent), VERIFY (a claimed
batch whose earlier send is uncertain was read back) and POLL (awaiting sub-jobs were polled). The
same outcome can mean different things per phase: `RetryLater` from a poll means "read again later"
and sends nothing, from a submit it re-sends after a backoff. Anything that might have reached the
cloud without us knowing the answer comes back with `verify_first`, never as a blind re-send.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import assert_never

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
from jobs.retry import GiveUp, RetryPolicy, decide_retry
from jobs.states import Event, State, transition
from jobs.types import JSONValue

EXECUTOR_ERROR = "engine.executor_error"
AWAIT_TIMEOUT = "engine.await_timeout"
SPLIT_REJECTED = "engine.batch_rejected"
NO_EVIDENCE = "engine.no_evidence"  # the error code of an `unknown` sub-job


class Phase(StrEnum):
    SUBMIT = "submit"
    VERIFY = "verify"
    POLL = "poll"


@dataclass(frozen=True)
class Context:
    now: datetime
    phase: Phase
    policy: RetryPolicy
    poll_interval: float  # seconds between polls when the executor names none
    max_await: float  # seconds a sub-job may stay AWAITING before it fails
    rand: Callable[[], float]  # jitter source in [0, 1); deterministic in tests
    # the retry policy of a rate key (its endpoint's throttling deadline); None: `policy`
    policy_for: Callable[[str], RetryPolicy] | None = None
    # the longest budget period of a rate key (None: no budget), for throttle waits
    window: Callable[[str], float | None] | None = None
    # when the poll being decided left (None: `now`): the next poll is due a poll interval after
    # it, not after its answer, so a poll's own time does not stretch the cadence (D106)
    sent: datetime | None = None

    def policy_of(self, rate_key: str) -> RetryPolicy:
        return self.policy if self.policy_for is None else self.policy_for(rate_key)

    def window_of(self, rate_key: str) -> float | None:
        return None if self.window is None else self.window(rate_key)


def _change(
    sub: SubJobRecord,
    event: Event | None,
    code: str | None = None,
    message: str | None = None,
    **values: JSONValue | datetime,
) -> Change:
    return _change_values(sub, event, values, code, message)


def _change_values(
    sub: SubJobRecord,
    event: Event | None,
    values: Mapping[str, JSONValue | datetime],
    code: str | None = None,
    message: str | None = None,
) -> Change:
    if event is not None:
        transition(sub.state, event)  # validates against the table
    return Change(
        subjob_id=sub.id,
        operation_id=sub.operation_id,
        target_id=sub.target_id,
        from_state=sub.state,
        event=event,
        values=tuple(sorted(values.items())),
        code=code,
        message=message,
    )


def _at(ctx: Context, seconds: float | None, default: float = 0.0) -> datetime:
    return ctx.now + timedelta(seconds=max(0.0, default if seconds is None else seconds))


def decide(sub: SubJobRecord, outcome: Outcome, ctx: Context) -> Change:
    """The change one outcome makes to one sub-job in the given phase."""
    match outcome:
        case Accepted():
            return _accepted(sub, outcome, ctx)
        case Completed():
            values: dict[str, JSONValue | datetime] = {
                "reason": outcome.reason,
                "verify_first": False,
                "error_code": None,
                "error_message": None,
            }
            if outcome.memo:
                values["memo"] = {**(sub.memo or {}), **outcome.memo}
            return _change_values(sub, Event.COMPLETE, values, message=outcome.reason)
        case Noop():
            return _noop(sub, outcome, ctx)
        case StillRunning():
            if ctx.phase is Phase.POLL:
                return _still_running(sub, outcome.poll_after, ctx)
            return _accepted(sub, Accepted(poll_after=outcome.poll_after), ctx)
        case RetryLater() | Failed():
            return _retry(sub, outcome, ctx)
        case Advance():
            return _advance(sub, outcome, ctx)
        case Split():
            return _lone_split(sub, outcome, ctx)
        case Resubmit():
            return _resubmit(sub, outcome, ctx)
        case Unknown():
            return _unknown(sub, outcome)
        case _:
            assert_never(outcome)


def _noop(sub: SubJobRecord, outcome: Noop, ctx: Context) -> Change:
    """Nothing to do: SKIPPED before anything was sent; after a step or an accepted call the
    action did happen, so it is a success with the reason."""
    event = Event.NOOP if ctx.phase is not Phase.POLL and sub.step == 0 else Event.COMPLETE
    return _change(sub, event, message=outcome.reason, reason=outcome.reason, verify_first=False)


def _unknown(sub: SubJobRecord, outcome: Unknown) -> Change:
    """The call may have acted and the cloud keeps no record: the sub-job ends UNKNOWN, with the
    reason where a failure shows its message. Nothing is sent again on its own; a retry-failed
    that takes it (`include_unknown`) reads the cloud first (`verify_first`)."""
    reason = outcome.reason or Unknown().reason
    return _change(
        sub,
        Event.NO_EVIDENCE,
        NO_EVIDENCE,
        reason,
        reason=reason,
        verify_first=True,
        error_code=NO_EVIDENCE,
        error_message=reason,
    )


def _lone_split(sub: SubJobRecord, outcome: Split, ctx: Context) -> Change:
    """A Split for a single sub-job: the cloud rejected the call because of this very server."""
    if ctx.phase is Phase.SUBMIT and sub.state is State.DISPATCHING:
        return _change(
            sub,
            Event.FAIL,
            SPLIT_REJECTED,
            outcome.reason or "rejected",
            error_code=SPLIT_REJECTED,
            error_message=outcome.reason,
        )
    return _retry(sub, Failed(SPLIT_REJECTED, outcome.reason, retryable=True), ctx)


def _resubmit(sub: SubJobRecord, outcome: Resubmit, ctx: Context) -> Change:
    if ctx.phase is Phase.SUBMIT:  # a send that did not go through: a bounded retry
        return _retry(sub, RetryLater(reason=outcome.reason or "resubmit"), ctx)
    return _change(
        sub,
        Event.RESUBMIT,
        message=outcome.reason,
        verify_first=False,
        not_before=ctx.now,
        cloud_job_id=None,
        accepted_at=None,
    )


def _accepted(sub: SubJobRecord, outcome: Accepted, ctx: Context) -> Change:
    poll_at = _at(ctx, outcome.poll_after, ctx.poll_interval)
    if ctx.phase is Phase.POLL:  # the cloud moved the work to another job: follow it
        values: dict[str, JSONValue | datetime] = {"not_before": poll_at}
        if outcome.cloud_job_id is not None:
            values["cloud_job_id"] = outcome.cloud_job_id
        return _change_values(sub, None, values)
    values = {
        "cloud_job_id": outcome.cloud_job_id,
        "accepted_at": ctx.now,
        "not_before": poll_at,
        "verify_first": False,
        "begun": True,
    }
    if sub.throttled_since is not None:  # the cloud took a call: the throttling is over
        values["throttled_since"] = None
    if outcome.request_id is not None:
        values["request_id"] = outcome.request_id
    if outcome.memo is not None:
        values["memo"] = dict(outcome.memo)
    return _change_values(sub, Event.ACCEPT, values, message=outcome.cloud_job_id)


def _timed_out(sub: SubJobRecord, ctx: Context) -> bool:
    since = sub.accepted_at or sub.updated_at
    return (ctx.now - since).total_seconds() > ctx.max_await


def _still_running(
    sub: SubJobRecord, poll_after: float | None, ctx: Context, *, cadence: bool = True
) -> Change:
    if _timed_out(sub, ctx):
        reason = f"no result from the cloud after {ctx.max_await:g}s"
        return _change(
            sub, Event.FAIL, AWAIT_TIMEOUT, reason, error_code=AWAIT_TIMEOUT, error_message=reason
        )
    return _change(sub, None, not_before=_next_poll(ctx, poll_after, cadence))


def _next_poll(ctx: Context, poll_after: float | None, cadence: bool) -> datetime:
    """The next poll of a row still running: `poll_after` (or the poll interval) after the poll
    that saw it left, at once (never before its answer) when that poll took longer (D106); after
    a poll that failed (`cadence` False) the delay runs from the failure, as a backoff."""
    start = ctx.sent if cadence and ctx.sent is not None else ctx.now
    seconds = ctx.poll_interval if poll_after is None else poll_after
    return max(ctx.now, start + timedelta(seconds=max(0.0, seconds)))


def _retry(sub: SubJobRecord, outcome: RetryLater | Failed, ctx: Context) -> Change:
    if ctx.phase is Phase.POLL and isinstance(outcome, RetryLater):
        return _still_running(sub, outcome.delay, ctx, cadence=False)
    throttled = isinstance(outcome, RetryLater) and outcome.throttled
    since = sub.throttled_since if throttled else None
    verdict = decide_retry(
        ctx.policy_of(sub.rate_key),
        sub.attempt,
        sub.throttles,
        outcome,
        ctx.rand(),
        counted=ctx.phase is not Phase.VERIFY,
        throttled_for=0.0 if since is None else (ctx.now - since).total_seconds(),
        window=ctx.window_of(sub.rate_key) if throttled else None,
    )
    code = outcome.code
    message = outcome.reason
    maybe_sent = isinstance(outcome, RetryLater) and outcome.maybe_sent
    if isinstance(verdict, GiveUp) and outcome.on_give_up is not None:
        return _advance(sub, outcome.on_give_up, ctx)
    if isinstance(verdict, GiveUp):
        # a failure after a call that may have acted keeps `verify_first` (set here, or by an
        # earlier ambiguous answer): a retry-failed reads the cloud before it sends again
        values: dict[str, JSONValue | datetime] = {
            "error_code": verdict.code,
            "error_message": verdict.reason,
        }
        if maybe_sent:
            values["verify_first"] = True
        return _change_values(sub, Event.FAIL, values, verdict.code, verdict.reason)
    verify = ctx.phase is Phase.VERIFY or maybe_sent
    streak: dict[str, JSONValue | datetime] = {}
    if throttled or sub.throttled_since is not None:  # a throttle begins or goes on; or ends
        streak["throttled_since"] = (since or ctx.now) if throttled else None
    return _change(
        sub,
        Event.RETRY,
        code,
        message,
        **streak,
        not_before=_at(ctx, verdict.delay),
        attempt=verdict.attempt,
        throttles=verdict.throttles,
        verify_first=verify,
        error_code=code,
        error_message=message or None,
        cloud_job_id=None,
        accepted_at=None,
    )


def _advance(sub: SubJobRecord, outcome: Advance, ctx: Context) -> Change:
    if outcome.next_step <= sub.step:
        raise ValueError(f"Advance to step {outcome.next_step} from step {sub.step}")
    values: dict[str, JSONValue | datetime] = {
        "step": outcome.next_step,
        "not_before": _at(ctx, outcome.delay),
        "attempt": 0,
        "throttles": 0,
        "cloud_job_id": None,
        "request_id": None,
        "accepted_at": None,
        "verify_first": False,
        "reason": outcome.reason,
    }
    if sub.throttled_since is not None:
        values["throttled_since"] = None
    if outcome.rate_key is not None:
        values["rate_key"] = outcome.rate_key
    if outcome.batch_key is not None:
        values["batch_key"] = outcome.batch_key
    if outcome.memo is not None:
        values["memo"] = dict(outcome.memo)
    if not outcome.passed_over:
        values["begun"] = True
    return _change_values(sub, Event.ADVANCE, values, message=outcome.reason)


def split(batch: Batch, outcome: Split, ctx: Context) -> list[Change]:
    """Re-dispatch a rejected batch smaller: blamed servers alone, the rest together (or halves
    when nobody was named). A lone sub-job cannot be split: it failed."""
    subs = batch.subjobs
    if len(subs) <= 1 or ctx.phase is not Phase.SUBMIT:
        return [decide(s, outcome, ctx) for s in subs]
    named = [s for s in subs if s.target_id in outcome.culprits]
    keys: dict[int, str] = {}
    if named:
        keys = {s.id: f"{batch.batch_key}|solo:{s.target_id}" for s in named}
    else:
        half = len(subs) // 2
        keys = {s.id: f"{batch.batch_key}|{'a' if i < half else 'b'}" for i, s in enumerate(subs)}
    changes = []
    for sub in subs:
        values: dict[str, JSONValue | datetime] = {
            "not_before": ctx.now,
            "attempt": max(0, sub.attempt - 1),
            "verify_first": False,
        }
        if sub.id in keys:
            values["batch_key"] = keys[sub.id]
        changes.append(_change_values(sub, Event.SPLIT, values, SPLIT_REJECTED, outcome.reason))
    return changes


def decide_batch(
    batch: Batch, outcomes: Mapping[int, Outcome] | BaseException, ctx: Context
) -> list[Change]:
    """Changes for every sub-job of a batch. An executor exception, or a sub-job it returned no
    outcome for, is treated as "may have been sent": retried with verify_first, bounded."""
    if isinstance(outcomes, BaseException):
        error = RetryLater(
            reason=f"{type(outcomes).__name__}: {outcomes}", code=EXECUTOR_ERROR, maybe_sent=True
        )
        return [decide(s, error, ctx) for s in batch.subjobs]
    splits = [o for o in outcomes.values() if isinstance(o, Split)]
    if splits:
        return split(batch, splits[0], ctx)
    missing = RetryLater(
        reason="the executor returned no outcome", code=EXECUTOR_ERROR, maybe_sent=True
    )
    return [decide(s, outcomes.get(s.id, missing), ctx) for s in batch.subjobs]


def summarize(
    outcomes: Mapping[int, Outcome] | BaseException,
) -> tuple[str, str | None, str | None]:
    """(outcome word, code, message) for the cloud call's row."""
    if isinstance(outcomes, BaseException):
        return "error", EXECUTOR_ERROR, f"{type(outcomes).__name__}: {outcomes}"
    names = sorted({type(o).__name__.lower() for o in outcomes.values()})
    word = names[0] if len(names) == 1 else ("mixed" if names else "empty")
    failures: Sequence[Failed] = [o for o in outcomes.values() if isinstance(o, Failed)]
    if len(names) == 1 and failures:
        return word, failures[0].code, failures[0].reason
    unknowns = [o for o in outcomes.values() if isinstance(o, Unknown)]
    if len(names) == 1 and unknowns:
        return word, NO_EVIDENCE, unknowns[0].reason
    return word, None, None
