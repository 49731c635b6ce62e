"""The executor: the only place where driver calls and their errors become engine outcomes.

For a claimed batch it makes ONE driver call (every sub-job shares endpoint, recipe and step),
for sub-jobs awaiting a cloud job it polls that job ONCE, and for sub-jobs whose earlier send may
or may not have reached the cloud (`verify_first` after a crash) it reads the servers first and
re-sends only when the cloud shows no trace of the call. Multi-step actions advance through their
recipe, as the endpoint's driver declares it (`fleet.drivers.actions`). A failure of a step that leaves a server half-way (a Nova confirm, an ECS
resize of a server stopped for it), seen by a poll or as a refusal of the call, runs the recipe's
compensation step (revert, start again) before the sub-job is reported failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

import structlog

from fleet.domain import Action, ActionParams, PowerType, ServerRef, ServerStatus
from fleet.drivers.actions import TYPICAL_SECONDS, ActionSpec, Evidence, Goal, Recipe, Step
from fleet.drivers.base import Driver, OutcomeState, PollResult, ServerOutcome, Submission
from fleet.drivers.errors import (
    DriverError,
    ErrorKind,
    NotFound,
    Throttled,
    Transient,
)
from fleet.engine import creating
from fleet.engine.evidence import Seen, judge
from fleet.engine.opspec import parse_params
from fleet.engine.planner import batch_key, rate_key
from jobs.outcomes import (
    ROLLED_BACK,
    Accepted,
    Advance,
    Completed,
    Failed,
    Outcome,
    Resubmit,
    RetryLater,
    Split,
    StillRunning,
    Unknown,
)
from jobs.plan import was_running
from jobs.ports import ActionProfile, StepProfile, SubJobOutcomes
from jobs.records import Batch, SubJobRecord
from jobs.types import JSONValue

log = structlog.get_logger("fleet.executor")

# The first poll of an accepted call comes after this share of its action's expected time (then
# every poll interval): reading a server that cannot have settled yet only spends API budget and
# a poll round (D11).
FIRST_POLL = 1.0
# Servers of one poll group on a one-server-per-call endpoint: read together by one listing of what
# changed since the earliest of their calls was accepted.
LISTED_POLL_BATCH = 200


def _server_id(sj: SubJobRecord) -> str:
    return str(sj.payload["server_id"])


class FleetExecutor:
    """Implements `jobs.ports.Executor` over the configured drivers."""

    def __init__(
        self,
        drivers: Mapping[str, Driver],
        *,
        max_batch: int = 1000,
        action_seconds: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        self._drivers = drivers
        self._max_batch = max_batch
        self._action_seconds = action_seconds or {}  # endpoint -> action -> seconds

    def _seconds(self, endpoint: str, action: Action) -> float:
        """How long `action` takes on `endpoint` until the server settles: the endpoint's
        configured time, else what its driver declares."""
        own = self._action_seconds.get(endpoint, {})
        if action in own:
            return own[action]
        driver = self._drivers.get(endpoint)
        if driver is None or action not in driver.capabilities.actions:
            return TYPICAL_SECONDS.get(action, 10.0)
        return driver.capabilities.spec(action).duration

    def _first_poll(self, endpoint: str, step: Step, params: ActionParams) -> float | None:
        """Seconds before the first poll of an accepted call (None: the engine's interval). A
        hard stop or reboot and a live resize are quicker than the action's time says."""
        if params.type is PowerType.HARD or params.live:
            return None
        return FIRST_POLL * self._seconds(endpoint, step.action)

    async def cloud_clock(self, rate_key: str) -> datetime | None:
        """The latest `Date` the cloud behind `rate_key` answered with (see `CloudClock`); None
        when it cannot be read now (the send's record is then no evidence: `unknown`)."""
        driver = self._drivers.get(rate_key.split(":", 1)[0])
        if driver is None:
            return None
        try:
            return await driver.cloud_clock()
        except DriverError as exc:
            log.warning("cloud_clock_unread", rate_key=rate_key, error=str(exc))
            return None

    # --- profile -----------------------------------------------------------------------------

    def profile(self, kind: str, rate_key: str | None = None) -> ActionProfile:
        """Steps of `kind` with the batch size of the endpoint behind `rate_key` (without it, the
        longest recipe any endpoint declares for the kind: only the ETA's timing uses that).
        Each step names the rate key it is sent on (an ECS resize: `{endpoint}:resize` between
        a stop and a start on `{endpoint}:action`), whether it applies only to servers that were
        running, and whether it is a compensation, so that the plan counts calls per key."""
        endpoint = None if rate_key is None else rate_key.split(":", 1)[0]
        found = self._recipe_of(kind, endpoint)
        if found is None:
            return ActionProfile(steps=(StepProfile(self._max_batch, 0.0),), poll_batch=50)
        endpoint_used, recipe = found
        driver = self._drivers[endpoint_used]
        keyed = endpoint is not None and endpoint in self._drivers
        steps = tuple(
            StepProfile(
                min(self._max_batch, _max_batch(driver, s.action)) if keyed else self._max_batch,
                # a compensation (revert) is not on the way of a server that succeeds
                0.0 if s.on_failure_only else self._seconds(endpoint_used, s.action),
                rate_key=self._step_key(endpoint, driver, s.action) if keyed else None,
                only_if_running=s.only_if_running,
                on_failure_only=s.on_failure_only,
            )
            for s in recipe.steps
        )
        # An endpoint that takes one server per call (the Nova dialects) reads the status of a
        # whole poll group with one `changes-since` listing (`OpenStackDriver.poll`), so its
        # groups are larger; batch APIs (Huawei) poll one cloud job per call.
        per_server = keyed and all(s.max_batch == 1 for s in steps)
        return ActionProfile(steps=steps, poll_batch=LISTED_POLL_BATCH if per_server else 50)

    def _recipe_of(self, kind: str, endpoint: str | None) -> tuple[str, Recipe] | None:
        """The recipe `kind` follows on `endpoint` (an unknown endpoint or None: the longest any
        endpoint declares), with the endpoint whose declarations time it."""
        names = [endpoint] if endpoint is not None and endpoint in self._drivers else []
        names = names or sorted(self._drivers)
        found: list[tuple[str, Recipe]] = []
        for name in names:
            caps = self._drivers[name].capabilities
            if kind in caps.kinds():
                recipes = caps.offer(kind).recipes
                found.append((name, max(recipes, key=lambda r: len(r.steps))))
        if not found:
            return None
        return max(found, key=lambda f: len(f[1].steps))

    @staticmethod
    def _step_key(endpoint: str | None, driver: Driver | None, action: Action) -> str | None:
        """The rate key a step of `action` is sent on at `endpoint` (None: an unknown endpoint,
        or an action its dialect lacks: the plan counts the step on the target's own key)."""
        if endpoint is None or driver is None or action not in driver.capabilities.actions:
            return None
        return rate_key(endpoint, driver, action)

    # --- the Executor port: every line logged inside carries the operation, call and endpoint ---

    async def submit(self, batch: Batch) -> SubJobOutcomes:
        return await self._logged(batch, "submit", self._submit)

    async def poll(self, batch: Batch) -> SubJobOutcomes:
        return await self._logged(batch, "poll", self._poll)

    async def verify(self, batch: Batch) -> SubJobOutcomes:
        return await self._logged(batch, "verify", self._verify)

    async def _logged(
        self, batch: Batch, phase: str, run: Callable[[Batch], Awaitable[SubJobOutcomes]]
    ) -> SubJobOutcomes:
        endpoint = str(batch.subjobs[0].payload["endpoint"])
        with structlog.contextvars.bound_contextvars(
            operation_id=batch.operation_id,
            call_id=batch.call_id,
            endpoint=endpoint,
            step=batch.step,
        ):
            outcomes = await run(batch)
            for sj in batch.subjobs:
                _log_outcome(phase, sj, outcomes.get(sj.id))
        return outcomes

    # --- helpers -----------------------------------------------------------------------------

    def _context(self, batch: Batch) -> tuple[str, Driver, Recipe, ActionParams]:
        first = batch.subjobs[0]
        endpoint = str(first.payload["endpoint"])
        driver = self._drivers[endpoint]
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
        return endpoint, driver, recipe, params

    def _after(
        self, endpoint: str, driver: Driver, recipe: Recipe, step: int, sj: SubJobRecord
    ) -> Outcome:
        """The step succeeded: the next step, or done."""
        if recipe.steps[step].on_failure_only:
            return _compensated(recipe.steps[step], sj)
        nxt = recipe.next_step(step, was_running(sj))
        if nxt is None:
            return Completed()
        return Advance(
            next_step=nxt,
            rate_key=rate_key(endpoint, driver, recipe.steps[nxt].action),
            batch_key=batch_key(endpoint, recipe.name, nxt),
        )

    def _failed(
        self,
        endpoint: str,
        driver: Driver,
        recipe: Recipe,
        step: int,
        sj: SubJobRecord,
        code: str,
        reason: str,
        retryable: bool,
    ) -> Outcome:
        """Step `step` failed for `sj`: its compensation step when it has one for this server,
        else the failure (a failed compensation reports the failure that it compensated)."""
        current = recipe.steps[step]
        if current.on_failure_only:
            return _compensation_failed(current, sj, code, reason, retryable)
        nxt = recipe.compensation(step, was_running(sj))
        if nxt is None:
            return Failed(code=code, reason=reason, retryable=retryable)
        compensation = recipe.steps[nxt]
        doing = compensation.doing or compensation.action.value
        return Advance(
            next_step=nxt,
            rate_key=rate_key(endpoint, driver, compensation.action),
            batch_key=batch_key(endpoint, recipe.name, nxt),
            reason=f"{current.action.value} failed ([{code}] {reason}): {doing}",
            memo={
                ROLLED_BACK: f"[{code}] {reason}",  # retry-failed restarts it from its first step
                "failure_code": code,
                "failure_message": reason,
            },
        )

    def _refused(
        self, batch: Batch, sj: SubJobRecord, failed: Failed, kind: ErrorKind | None = None
    ) -> Outcome:
        """The call of the batch's step was refused for `sj` at submit. A final refusal (the
        cloud will not take the call as it stands) of a compensated step is compensated like a
        failure seen by a poll; a retryable one is left to the engine's retries, and a server
        that is not found has nothing to compensate. A refused compensation reports the failure
        that it compensated."""
        endpoint, driver, recipe, _ = self._context(batch)
        compensating = recipe.steps[batch.step].on_failure_only
        if not compensating and kind is ErrorKind.NOT_FOUND:
            return failed
        if not compensating and failed.retryable:
            return self._or_compensate(batch, sj, failed)
        return self._failed(
            endpoint, driver, recipe, batch.step, sj, failed.code, failed.reason, failed.retryable
        )

    def _or_compensate(self, batch: Batch, sj: SubJobRecord, out: RetryLater | Failed) -> Outcome:
        """A retryable refusal of a compensated step is retried by the engine; should its retries
        run out, the step is compensated instead of failing (a Nova confirm that keeps failing
        is reverted, not left in VERIFY_RESIZE). Not after an ambiguous send: the step may have
        been done, and the read-back decides."""
        if isinstance(out, RetryLater) and (out.maybe_sent or out.throttled):
            return out  # throttling says nothing of the step: a retry-failed can still do it
        endpoint, driver, recipe, _ = self._context(batch)
        if not recipe.steps[batch.step].compensated:
            return out
        code = out.code or "failed"
        fallback = self._failed(endpoint, driver, recipe, batch.step, sj, code, out.reason, True)
        return replace(out, on_give_up=fallback) if isinstance(fallback, Advance) else out

    # --- submit ------------------------------------------------------------------------------

    async def _submit(self, batch: Batch) -> SubJobOutcomes:
        endpoint, driver, recipe, params = self._context(batch)
        step = recipe.step(batch.step)
        if driver.capabilities.spec(step.action).goal is Goal.CREATED:
            first_poll = self._first_poll(endpoint, step, params)
            return await creating.submit(batch, driver, params, first_poll)
        outcomes: dict[int, Outcome] = {}
        send: list[SubJobRecord] = []
        for sj in batch.subjobs:
            if step.only_if_running and not was_running(sj):  # passed over, nothing sent
                after = self._after(endpoint, driver, recipe, batch.step, sj)
                if isinstance(after, Advance):
                    after = replace(after, passed_over=True)
                outcomes[sj.id] = after
            else:
                send.append(sj)
        if not send:
            return outcomes
        try:
            submission = await driver.submit(step.action, [_server_id(s) for s in send], params)
        except DriverError as exc:
            outcomes.update(await self._submit_error(exc, batch, send, driver, step))
            return outcomes
        first_poll = self._first_poll(endpoint, step, params)
        for sj in send:
            if submission.done:
                outcomes[sj.id] = self._after(endpoint, driver, recipe, batch.step, sj)
            else:
                outcomes[sj.id] = Accepted(
                    cloud_job_id=submission.job_id,
                    request_id=submission.request_id,
                    memo={"submission": _submission_json(submission), **_keep(sj)},
                    poll_after=first_poll,
                )
        return outcomes

    async def _submit_error(
        self,
        exc: DriverError,
        batch: Batch,
        send: Sequence[SubJobRecord],
        driver: Driver,
        step: Step,
    ) -> dict[int, Outcome]:
        code = exc.code or exc.kind.value
        if isinstance(exc, Throttled):
            out: Outcome = RetryLater(
                delay=exc.retry_after, reason=str(exc), throttled=True, code=code
            )
        elif isinstance(exc, Transient):
            out = RetryLater(reason=str(exc), code=code, maybe_sent=exc.ambiguous)
        elif len(send) > 1 and exc.kind in (
            ErrorKind.PERMANENT,
            ErrorKind.INVALID_STATE,
            ErrorKind.NOT_FOUND,
        ):
            by_server = {_server_id(s): s.target_id for s in send}
            culprits = frozenset(by_server[i] for i in exc.server_ids if i in by_server)
            out = Split(culprits=culprits, reason=str(exc))
        elif exc.kind is ErrorKind.INVALID_STATE:
            return {sj.id: await self._recheck(exc, batch, sj, driver, step) for sj in send}
        else:
            retryable = exc.kind in (ErrorKind.AUTH, ErrorKind.INVALID_STATE)
            failed = Failed(code=code, reason=exc.message, retryable=retryable)
            return {sj.id: self._refused(batch, sj, failed, exc.kind) for sj in send}
        if isinstance(out, RetryLater):
            return {sj.id: self._or_compensate(batch, sj, out) for sj in send}
        return {sj.id: out for sj in send}

    async def _recheck(
        self, exc: DriverError, batch: Batch, sj: SubJobRecord, driver: Driver, step: Step
    ) -> Outcome:
        """The cloud said the server is in the wrong state: maybe it is already where we want it."""
        endpoint, _, recipe, params = self._context(batch)
        code = exc.code or "invalid_state"
        try:
            server = await driver.get_server(_server_id(sj))
        except DriverError:
            return self._refused(batch, sj, Failed(code=code, reason=exc.message, retryable=True))
        if _reached(driver.capabilities.spec(step.action), server, params):
            return self._after(endpoint, driver, recipe, batch.step, sj)
        failed = Failed(code=code, reason=exc.message, retryable=not server.settled)
        return self._refused(batch, sj, failed)

    # --- poll --------------------------------------------------------------------------------

    async def _poll(self, batch: Batch) -> SubJobOutcomes:
        endpoint, driver, recipe, params = self._context(batch)
        step = recipe.step(batch.step)
        if driver.capabilities.spec(step.action).goal is Goal.CREATED:
            return await creating.poll(batch, driver, params)
        submission = _submission_for(batch, step, params)
        try:
            result = await driver.poll(submission)
        except DriverError as exc:
            return {sj.id: _poll_error(exc) for sj in batch.subjobs}
        return {
            sj.id: self._outcome(result, endpoint, driver, recipe, batch.step, sj)
            for sj in batch.subjobs
        }

    def _outcome(
        self,
        result: PollResult,
        endpoint: str,
        driver: Driver,
        recipe: Recipe,
        step: int,
        sj: SubJobRecord,
    ) -> Outcome:
        one: ServerOutcome | None = result.outcomes.get(_server_id(sj))
        if one is None or one.state is OutcomeState.RUNNING:
            return StillRunning()
        if one.state is OutcomeState.DONE:
            return self._after(endpoint, driver, recipe, step, sj)
        retryable = one.kind == ErrorKind.TRANSIENT.value
        code, reason = one.code or "failed", one.reason or "failed"
        return self._failed(endpoint, driver, recipe, step, sj, code, reason, retryable)

    # --- verify ------------------------------------------------------------------------------

    async def _verify(self, batch: Batch) -> SubJobOutcomes:
        endpoint, driver, recipe, params = self._context(batch)
        step = recipe.step(batch.step)
        spec = driver.capabilities.spec(step.action)
        if spec.goal is Goal.CREATED:
            return await creating.verify(batch, driver, params)
        outcomes: dict[int, Outcome] = {}
        for sj in batch.subjobs:
            try:
                server = await driver.get_server(_server_id(sj))
                record = await _record(driver, spec, sj)
            except NotFound:
                outcomes[sj.id] = (
                    self._after(endpoint, driver, recipe, batch.step, sj)
                    if driver.capabilities.spec(step.action).leads_to is ServerStatus.DELETED
                    else Failed(code="not_found", reason="server not found")
                )
                continue
            except DriverError as exc:
                outcomes[sj.id] = _poll_error(exc)
                continue
            outcomes[sj.id] = self._verdict(
                endpoint, driver, recipe, batch.step, sj, server, params, record
            )
        return outcomes

    def _verdict(
        self,
        endpoint: str,
        driver: Driver,
        recipe: Recipe,
        step: int,
        sj: SubJobRecord,
        server: ServerRef,
        params: ActionParams,
        record: tuple[Seen, str] | None = None,
    ) -> Outcome:
        action = recipe.steps[step].action
        if record is not None:  # judged by the cloud's record of the call alone
            seen, why = record
            if seen is Seen.NO_EVIDENCE:
                return Unknown(reason=why)
            if seen is Seen.NOT_SEEN:
                return Resubmit(reason=why)
        if not server.settled:
            # Something is in progress on the server: our call landed; follow it by status.
            return Accepted(
                memo={"submission": _status_submission(action, server.id, params), **_keep(sj)}
            )
        spec = driver.capabilities.spec(action)
        if record is not None and not spec.settled_there(server):
            state = f"{server.status.value}{f' ({server.fault})' if server.fault else ''}"
            return Failed(code="failed", reason=f"{record[1]}; the server settled in {state}")
        if record is not None or _reached(spec, server, params):
            return self._after(endpoint, driver, recipe, step, sj)
        return Resubmit(reason=f"no trace of {action.value} on the server")


def _log_outcome(phase: str, sj: SubJobRecord, outcome: Outcome | None) -> None:
    """One line per sub-job (failures at warning, the rest at debug), with its ids."""
    ids = {"subjob_id": sj.id, "server_id": _server_id(sj), "phase": phase}
    if isinstance(outcome, Failed):
        log.warning("subjob_failed", code=outcome.code, reason=outcome.reason, **ids)
    else:
        log.debug("subjob_outcome", outcome=type(outcome).__name__, **ids)


def _max_batch(driver: Driver, action: Action) -> int:
    try:
        return driver.max_batch(action)
    except DriverError:
        return 1


FAILURE_KEYS = (ROLLED_BACK, "failure_code", "failure_message")


def _keep(sj: SubJobRecord) -> dict[str, JSONValue]:
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


def _compensated(step: Step, sj: SubJobRecord) -> Failed:
    """The compensation `step` is done: the failure it undid, reported with what was done."""
    code, message = _failure(sj)
    if step.code is not None or code is None:
        line = message if code is None else f"[{code}] {message}"
        return Failed(code=step.code or "failed", reason=f"{step.done or 'compensated'}: {line}")
    return Failed(code=code, reason=f"{message} ({step.done or 'compensated'})")


def _compensation_failed(
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


def _submission_json(submission: Submission) -> dict[str, JSONValue]:
    """What a poll needs again after a restart, without the server ids: every sub-job of a batch
    would otherwise carry the whole batch's id list (quadratic in the batch size)."""
    return {
        k: v
        for k, v in submission.as_dict().items()
        if k != "server_ids" and (v is None or isinstance(v, str | int | float | bool))
    }


def _status_submission(
    action: Action, server_id: str, params: ActionParams
) -> dict[str, JSONValue]:
    return _submission_json(Submission(action, (server_id,), "show", flavor=params.flavor))


def _submission_for(batch: Batch, step: Step, params: ActionParams) -> Submission:
    """The submission to poll: the recorded one (cloud job), or a status read of every server."""
    memo = batch.subjobs[0].memo or {}
    recorded = memo.get("submission")
    ids = tuple(_server_id(sj) for sj in batch.subjobs)
    if batch.subjobs[0].cloud_job_id and isinstance(recorded, Mapping):
        return replace(Submission.from_dict(recorded), server_ids=ids)
    return Submission(step.action, ids, "show", flavor=params.flavor, since=_since(batch))


def _since(batch: Batch) -> str | None:
    """The earliest time (the cloud's clock) at which one of the batch's calls was accepted,
    None unless every sub-job has one."""
    times: list[datetime] = []
    for sj in batch.subjobs:
        recorded = (sj.memo or {}).get("submission")
        since = recorded.get("since") if isinstance(recorded, Mapping) else None
        try:
            at = datetime.fromisoformat(since) if isinstance(since, str) else None
        except ValueError:
            at = None
        if at is None or at.tzinfo is None:
            return None
        times.append(at)
    return min(times).isoformat() if times else None


def _poll_error(exc: DriverError) -> Outcome:
    if isinstance(exc, Throttled):
        return RetryLater(delay=exc.retry_after, reason=str(exc), throttled=True, code=exc.code)
    if isinstance(exc, NotFound):
        return Failed(code=exc.code or "not_found", reason=exc.message)
    return RetryLater(reason=str(exc), code=exc.code or exc.kind.value)


def _reached(spec: ActionSpec, server: ServerRef, params: ActionParams) -> bool:
    """Whether `server` (settled) already shows what the call of `spec` leads to: its flavor,
    its tags read back (a tag call whose answer was lost is settled by reading, not by sending
    it again), or the status where the call leaves it."""
    if spec.goal in (Goal.FLAVOR, Goal.TAGS_SET, Goal.TAGS_UNSET):
        return spec.reached(server, params)
    return spec.settled_there(server)


async def _record(driver: Driver, spec: ActionSpec, sj: SubJobRecord) -> tuple[Seen, str] | None:
    """The cloud's record of the send of `spec` (`fleet.engine.evidence`), None where the dialect
    judges the call by the state it leaves instead (start, stop, resize and delete leave a status
    or flavor the server did not have when it was planned: servers already there are skipped)."""
    if spec.verify_by is not Evidence.INSTANCE_ACTION or spec.recorded_as is None:
        return None
    records = await driver.instance_actions(_server_id(sj))
    return judge(records, spec.recorded_as, sj.sent_after)
