"""The submit path: ONE driver call for a claimed batch, and what the cloud's answer (or its
refusal) means for each sub-job. A step that applies only to servers that were running is passed
over for the others; a refusal because of the server's state reads the server first (it may
already be where the call would take it). Calls that make servers go to `fleet.engine.creating`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from fleet.drivers.actions import Goal, Step
from fleet.drivers.errors import DriverError, ErrorKind, Throttled, Transient
from fleet.engine import creating
from fleet.engine.calls import Call, keep, reached, server_id, submission_json
from jobs.outcomes import Accepted, Advance, Failed, Outcome, RetryLater, Split
from jobs.plan import was_running
from jobs.ports import SubJobOutcomes
from jobs.records import Batch, SubJobRecord


async def submit(call: Call, batch: Batch) -> SubJobOutcomes:
    driver, params = call.driver, call.params
    step = call.recipe.step(batch.step)
    if driver.capabilities.spec(step.action).goal is Goal.CREATED:
        return await creating.submit(batch, driver, params, call.first_poll(step))
    outcomes: dict[int, Outcome] = {}
    send: list[SubJobRecord] = []
    for sj in batch.subjobs:
        if step.only_if_running and not was_running(sj):  # passed over, nothing sent
            after = call.after(sj)
            if isinstance(after, Advance):
                after = replace(after, passed_over=True)
            outcomes[sj.id] = after
        else:
            send.append(sj)
    if not send:
        return outcomes
    try:
        submission = await driver.submit(step.action, [server_id(s) for s in send], params)
    except DriverError as exc:
        outcomes.update(await _submit_error(exc, call, send, step))
        return outcomes
    first_poll = call.first_poll(step)
    for sj in send:
        if submission.done:
            outcomes[sj.id] = call.after(sj)
        else:
            outcomes[sj.id] = Accepted(
                cloud_job_id=submission.job_id,
                request_id=submission.request_id,
                memo={"submission": submission_json(submission), **keep(sj)},
                poll_after=first_poll,
            )
    return outcomes


async def _submit_error(
    exc: DriverError, call: Call, send: Sequence[SubJobRecord], step: Step
) -> dict[int, Outcome]:
    code = exc.code or exc.kind.value
    if isinstance(exc, Throttled):
        out: Outcome = RetryLater(delay=exc.retry_after, reason=str(exc), throttled=True, code=code)
    elif isinstance(exc, Transient):
        out = RetryLater(reason=str(exc), code=code, maybe_sent=exc.ambiguous)
    elif len(send) > 1 and exc.kind in (
        ErrorKind.PERMANENT,
        ErrorKind.INVALID_STATE,
        ErrorKind.NOT_FOUND,
    ):
        by_server = {server_id(s): s.target_id for s in send}
        culprits = frozenset(by_server[i] for i in exc.server_ids if i in by_server)
        out = Split(culprits=culprits, reason=str(exc))
    elif exc.kind is ErrorKind.INVALID_STATE:
        return {sj.id: await _recheck(exc, call, sj, step) for sj in send}
    else:
        retryable = exc.kind in (ErrorKind.AUTH, ErrorKind.INVALID_STATE)
        failed = Failed(code=code, reason=exc.message, retryable=retryable)
        return {sj.id: call.refused(sj, failed, exc.kind) for sj in send}
    if isinstance(out, RetryLater):
        return {sj.id: call.or_compensate(sj, out) for sj in send}
    return {sj.id: out for sj in send}


async def _recheck(exc: DriverError, call: Call, sj: SubJobRecord, step: Step) -> Outcome:
    """The cloud said the server is in the wrong state: maybe it is already where we want it."""
    driver = call.driver
    code = exc.code or "invalid_state"
    try:
        server = await driver.get_server(server_id(sj))
    except DriverError:
        return call.refused(sj, Failed(code=code, reason=exc.message, retryable=True))
    if reached(driver.capabilities.spec(step.action), server, call.params):
        return call.after(sj)
    failed = Failed(code=code, reason=exc.message, retryable=not server.settled)
    return call.refused(sj, failed)
