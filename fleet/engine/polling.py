"""The poll path: sub-jobs awaiting the cloud are read ONCE, a recorded cloud job or each
server's status (`Driver.poll`), and each server's outcome becomes the sub-job's: still running,
the recipe's next step or done, or the failure (compensated where the recipe says so). Calls that
make servers go to `fleet.engine.creating`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from fleet.domain import ActionParams
from fleet.drivers.actions import Goal, Step
from fleet.drivers.base import OutcomeState, PollResult, ServerOutcome, Submission
from fleet.drivers.errors import DriverError, ErrorKind
from fleet.engine import creating
from fleet.engine.calls import Call, earliest, poll_error, server_id
from jobs.outcomes import Outcome, StillRunning
from jobs.ports import SubJobOutcomes
from jobs.records import Batch, SubJobRecord


async def poll(call: Call, batch: Batch) -> SubJobOutcomes:
    driver, params = call.driver, call.params
    step = call.recipe.step(batch.step)
    if driver.capabilities.spec(step.action).goal is Goal.CREATED:
        return await creating.poll(batch, driver, params)
    submission = _submission_for(batch, step, params)
    try:
        result = await driver.poll(submission)
    except DriverError as exc:
        return {sj.id: poll_error(exc) for sj in batch.subjobs}
    return {sj.id: _outcome(call, result, sj) for sj in batch.subjobs}


def _outcome(call: Call, result: PollResult, sj: SubJobRecord) -> Outcome:
    one: ServerOutcome | None = result.outcomes.get(server_id(sj))
    if one is None or one.state is OutcomeState.RUNNING:
        return StillRunning()
    if one.state is OutcomeState.DONE:
        return call.after(sj)
    retryable = one.kind == ErrorKind.TRANSIENT.value
    code, reason = one.code or "failed", one.reason or "failed"
    return call.failed(sj, code, reason, retryable)


def _submission_for(batch: Batch, step: Step, params: ActionParams) -> Submission:
    """The submission to poll: the recorded one (cloud job), or a status read of every server."""
    memo = batch.subjobs[0].memo or {}
    recorded = memo.get("submission")
    ids = tuple(server_id(sj) for sj in batch.subjobs)
    if batch.subjobs[0].cloud_job_id and isinstance(recorded, Mapping):
        return replace(Submission.from_dict(recorded), server_ids=ids)
    return Submission(step.action, ids, "show", flavor=params.flavor, since=_since(batch))


def _since(batch: Batch) -> str | None:
    """The earliest time (the cloud's clock) at which one of the batch's calls was accepted,
    None unless every sub-job has one."""
    return earliest(_recorded(sj).get("since") for sj in batch.subjobs)


def _recorded(sj: SubJobRecord) -> Mapping[str, object]:
    recorded = (sj.memo or {}).get("submission")
    return recorded if isinstance(recorded, Mapping) else {}
