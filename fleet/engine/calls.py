"""A batch's call as the executor sees it (`Call`: endpoint, driver, recipe, step, parameters),
and what the step's outcome for one sub-job leads to: the recipe's next step or done, or the
step's compensation (revert, start again) before the failure, a compensation's own outcome
reporting the failure it undid. Shared by the submit, poll and verify paths
(`fleet.engine.submitting`, `fleet.engine.polling`, `fleet.engine.verifying`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from fleet.domain import Action, ActionParams, PowerType, ServerRef
from fleet.drivers.actions import TYPICAL_SECONDS, ActionSpec, Goal, Recipe, Step
from fleet.drivers.base import Driver, Submission
from fleet.drivers.errors import DriverError, ErrorKind, NotFound, Throttled
from fleet.engine.opspec import parse_params
from fleet.engine.planner import batch_key, rate_key
from jobs.outcomes import ROLLED_BACK, Advance, Completed, Failed, Outcome, RetryLater
from jobs.plan import was_running
from jobs.records import Batch, SubJobRecord
from jobs.types import JSONValue

# The first poll of an accepted call comes after this share of its action's expected time (then
# every poll interval): reading a server that cannot have settled yet only spends API budget and
# a poll round (D11).
FIRST_POLL = 1.0


def server_id(sj: SubJobRecord) -> str:
    return str(sj.payload["server_id"])


def action_seconds(own: Mapping[str, float], driver: Driver | None, action: Action) -> float:
    """How long `action` takes until the server settles: the endpoint's configured time (`own`),
    else what its driver declares."""
    if action in own:
        return own[action]
    if driver is None or action not in driver.capabilities.actions:
        return TYPICAL_SECONDS.get(action, 10.0)
    return driver.capabilities.spec(action).duration


def first_poll(
    own: Mapping[str, float], driver: Driver | None, step: Step, params: ActionParams
) -> float | None:
    """Seconds before the first poll of an accepted call (None: the engine's interval). A hard
    stop or reboot and a live resize are quicker than the action's time says."""
    if params.type is PowerType.HARD or params.live:
        return None
    return FIRST_POLL * action_seconds(own, driver, step.action)


@dataclass(frozen=True)
class Call:
    """The call of a batch: every sub-job shares its endpoint, recipe and step (`step`, an index
    into `recipe.steps`); `params` as the endpoint takes them; `own_seconds` the endpoint's
    configured action times."""

    endpoint: str
    driver: Driver
    recipe: Recipe
    step: int
    params: ActionParams
    own_seconds: Mapping[str, float]

    @classmethod
    def of(
        cls,
        batch: Batch,
        drivers: Mapping[str, Driver],
        seconds: Mapping[str, Mapping[str, float]],
    ) -> Call:
        first = batch.subjobs[0]
        endpoint = str(first.payload["endpoint"])
        driver = drivers[endpoint]
        recipe = driver.capabilities.recipe(str(first.payload["recipe"]))
        params = parse_params(batch.kind, batch.params)
        to_flavor = first.payload.get("to_flavor")
        if isinstance(to_flavor, str) and to_flavor != params.flavor:
            # the flavor as this endpoint's id, resolved at planning (asked for by name)
            params = replace(params, flavor=to_flavor)
        if params.live and not recipe.live:
            # asked for live, planned offline (the server was not running): the driver must
            # send a plain resize, which it chooses by `live`
            params = replace(params, live=False)
        return cls(endpoint, driver, recipe, batch.step, params, seconds.get(endpoint, {}))

    def first_poll(self, step: Step) -> float | None:
        return first_poll(self.own_seconds, self.driver, step, self.params)

    def after(self, sj: SubJobRecord) -> Outcome:
        """The step succeeded: the next step, or done."""
        recipe = self.recipe
        if recipe.steps[self.step].on_failure_only:
            return compensated(recipe.steps[self.step], sj)
        nxt = recipe.next_step(self.step, was_running(sj))
        if nxt is None:
            return Completed()
        return Advance(
            next_step=nxt,
            rate_key=rate_key(self.endpoint, self.driver, recipe.steps[nxt].action),
            batch_key=batch_key(self.endpoint, recipe.name, nxt),
        )

    def failed(self, sj: SubJobRecord, code: str, reason: str, retryable: bool) -> Outcome:
        """The step failed for `sj`: its compensation step when it has one for this server,
        else the failure (a failed compensation reports the failure that it compensated)."""
        recipe = self.recipe
        current = recipe.steps[self.step]
        if current.on_failure_only:
            return compensation_failed(current, sj, code, reason, retryable)
        nxt = recipe.compensation(self.step, was_running(sj))
        if nxt is None:
            return Failed(code=code, reason=reason, retryable=retryable)
        compensation = recipe.steps[nxt]
        doing = compensation.doing or compensation.action.value
        return Advance(
            next_step=nxt,
            rate_key=rate_key(self.endpoint, self.driver, compensation.action),
            batch_key=batch_key(self.endpoint, recipe.name, nxt),
            reason=f"{current.action.value} failed ([{code}] {reason}): {doing}",
            memo={
                ROLLED_BACK: f"[{code}] {reason}",  # retry-failed restarts it from its first step
                "failure_code": code,
                "failure_message": reason,
            },
        )

    def refused(self, sj: SubJobRecord, failed: Failed, kind: ErrorKind | None = None) -> Outcome:
        """The call of the step was refused for `sj` at submit. A final refusal (the cloud will
        not take the call as it stands) of a compensated step is compensated like a failure seen
        by a poll; a retryable one is left to the engine's retries, and a server that is not
        found has nothing to compensate. A refused compensation reports the failure that it
        compensated."""
        compensating = self.recipe.steps[self.step].on_failure_only
        if not compensating and kind is ErrorKind.NOT_FOUND:
            return failed
        if not compensating and failed.retryable:
            return self.or_compensate(sj, failed)
        return self.failed(sj, failed.code, failed.reason, failed.retryable)

    def or_compensate(self, sj: SubJobRecord, out: RetryLater | Failed) -> Outcome:
        """A retryable refusal of a compensated step is retried by the engine; should its retries
        run out, the step is compensated instead of failing (a Nova confirm that keeps failing
        is reverted, not left in VERIFY_RESIZE). Not after an ambiguous send: the step may have
        been done, and the read-back decides."""
        if isinstance(out, RetryLater) and (out.maybe_sent or out.throttled):
            return out  # throttling says nothing of the step: a retry-failed can still do it
        if not self.recipe.steps[self.step].compensated:
            return out
        fallback = self.failed(sj, out.code or "failed", out.reason, True)
        return replace(out, on_give_up=fallback) if isinstance(fallback, Advance) else out


FAILURE_KEYS = (ROLLED_BACK, "failure_code", "failure_message")


def keep(sj: SubJobRecord) -> dict[str, JSONValue]:
    """The failure a compensation step is undoing, carried over the memos of its calls."""
    memo = sj.memo or {}
    return {k: memo[k] for k in FAILURE_KEYS if memo.get(k)}


def _failure(sj: SubJobRecord) -> tuple[str | None, str]:
    """(code, message) of the failure being compensated; the code is None in a memo written
    before codes were kept (the message is then the "[code] message" line)."""
    memo = sj.memo or {}
    code, message = memo.get("failure_code"), memo.get("failure_message")
    if isinstance(code, str) and isinstance(message, str):
        return code, message
    return None, str(memo.get(ROLLED_BACK) or "failed")


def compensated(step: Step, sj: SubJobRecord) -> Failed:
    """The compensation `step` is done: the failure it undid, reported with what was done."""
    code, message = _failure(sj)
    if step.code is not None or code is None:
        line = message if code is None else f"[{code}] {message}"
        return Failed(code=step.code or "failed", reason=f"{step.done or 'compensated'}: {line}")
    return Failed(code=code, reason=f"{message} ({step.done or 'compensated'})")


def compensation_failed(
    step: Step, sj: SubJobRecord, code: str, reason: str, retryable: bool
) -> Failed:
    """The compensation `step` failed too: the failure it was undoing stays the verdict."""
    original, message = _failure(sj)
    if original is None:
        return Failed(code=code, reason=reason, retryable=retryable)
    return Failed(
        code=original,
        reason=f"{message} ({step.action.value} to compensate failed: [{code}] {reason})",
        retryable=retryable,
    )


def submission_json(submission: Submission) -> dict[str, JSONValue]:
    """What a poll needs again after a restart, without the server ids: every sub-job of a batch
    would otherwise carry the whole batch's id list (quadratic in the batch size)."""
    return {
        k: v
        for k, v in submission.as_dict().items()
        if k != "server_ids" and (v is None or isinstance(v, str | int | float | bool))
    }


def poll_error(exc: DriverError) -> Outcome:
    """A read of the servers that failed (a poll, a verify)."""
    if isinstance(exc, Throttled):
        return RetryLater(delay=exc.retry_after, reason=str(exc), throttled=True, code=exc.code)
    if isinstance(exc, NotFound):
        return Failed(code=exc.code or "not_found", reason=exc.message)
    return RetryLater(reason=str(exc), code=exc.code or exc.kind.value)


def reached(spec: ActionSpec, server: ServerRef, params: ActionParams) -> bool:
    """Whether `server` (settled) already shows what the call of `spec` leads to: its flavor,
    its tags read back (a tag call whose answer was lost is settled by reading, not by sending
    it again), or the status where the call leaves it."""
    if spec.goal in (Goal.FLAVOR, Goal.TAGS_SET, Goal.TAGS_UNSET):
        return spec.reached(server, params)
    return spec.settled_there(server)


def earliest(times: Iterable[object]) -> str | None:
    """The earliest of the calls' acceptance times (the cloud's clock, ISO 8601 with a zone), or
    None unless every one is such a time: a poll then reads as if no time were known."""
    parsed: list[datetime] = []
    for value in times:
        try:
            at = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            at = None
        if at is None or at.tzinfo is None:
            return None
        parsed.append(at)
    return min(parsed).isoformat() if parsed else None
