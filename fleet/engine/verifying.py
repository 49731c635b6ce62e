"""The verify path: sub-jobs whose earlier send may or may not have reached the cloud
(`verify_first`, after a crash or an ambiguous answer) read the servers first, and the call is
sent again only when the cloud shows no trace of it: the cloud's record of the call where the
dialect keeps one (`fleet.engine.evidence`), else the state the call leaves the server in. Calls
that make servers go to `fleet.engine.creating`.
"""

from __future__ import annotations

from fleet.domain import Action, ActionParams, ServerRef, ServerStatus
from fleet.drivers.actions import ActionSpec, Evidence, Goal
from fleet.drivers.base import Driver, Submission
from fleet.drivers.errors import DriverError, NotFound
from fleet.engine import creating
from fleet.engine.calls import Call, keep, poll_error, reached, server_id, submission_json
from fleet.engine.evidence import Seen, judge
from jobs.outcomes import Accepted, Failed, Outcome, Resubmit, Unknown
from jobs.ports import SubJobOutcomes
from jobs.records import Batch, SubJobRecord
from jobs.types import JSONValue


async def verify(call: Call, batch: Batch) -> SubJobOutcomes:
    driver, params = call.driver, call.params
    step = call.recipe.step(batch.step)
    spec = driver.capabilities.spec(step.action)
    if spec.goal is Goal.CREATED:
        return await creating.verify(batch, driver, params)
    outcomes: dict[int, Outcome] = {}
    for sj in batch.subjobs:
        try:
            server = await driver.get_server(server_id(sj))
            record = await _record(driver, spec, sj)
        except NotFound:
            outcomes[sj.id] = (
                call.after(sj)
                if driver.capabilities.spec(step.action).leads_to is ServerStatus.DELETED
                else Failed(code="not_found", reason="server not found")
            )
            continue
        except DriverError as exc:
            outcomes[sj.id] = poll_error(exc)
            continue
        outcomes[sj.id] = _verdict(call, sj, server, record)
    return outcomes


def _verdict(
    call: Call, sj: SubJobRecord, server: ServerRef, record: tuple[Seen, str] | None = None
) -> Outcome:
    action = call.recipe.steps[call.step].action
    if record is not None:  # judged by the cloud's record of the call alone
        seen, why = record
        if seen is Seen.NO_EVIDENCE:
            return Unknown(reason=why)
        if seen is Seen.NOT_SEEN:
            return Resubmit(reason=why)
    if not server.settled:
        # Something is in progress on the server: our call landed; follow it by status.
        return Accepted(
            memo={"submission": _status_submission(action, server.id, call.params), **keep(sj)}
        )
    spec = call.driver.capabilities.spec(action)
    if record is not None and not spec.settled_there(server):
        state = f"{server.status.value}{f' ({server.fault})' if server.fault else ''}"
        return Failed(code="failed", reason=f"{record[1]}; the server settled in {state}")
    if record is not None or reached(spec, server, call.params):
        return call.after(sj)
    return Resubmit(reason=f"no trace of {action.value} on the server")


def _status_submission(action: Action, sid: str, params: ActionParams) -> dict[str, JSONValue]:
    return submission_json(Submission(action, (sid,), "show", flavor=params.flavor))


async def _record(driver: Driver, spec: ActionSpec, sj: SubJobRecord) -> tuple[Seen, str] | None:
    """The cloud's record of the send of `spec` (`fleet.engine.evidence`), None where the dialect
    judges the call by the state it leaves instead (start, stop, resize and delete leave a status
    or flavor the server did not have when it was planned: servers already there are skipped)."""
    if spec.verify_by is not Evidence.INSTANCE_ACTION or spec.recorded_as is None:
        return None
    records = await driver.instance_actions(server_id(sj))
    return judge(records, spec.recorded_as, sj.sent_after)
