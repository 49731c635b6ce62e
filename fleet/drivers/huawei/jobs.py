"""Huawei cloud jobs (`GET /v1/{project_id}/jobs/{job_id}`, ECS and BMS) -> per-server outcomes.

A batch job has one sub-job per server (`entities.sub_jobs[].entities.server_id`); each carries
its own `status`, `error_code` and `fail_reason` (or `entities.errorcode_message`). How sub-job
failures roll up into the job status is not documented (A-17), so each server's outcome is read from
its own sub-job; the job status decides only for servers without one (e.g. a single-server resize).
"""

from __future__ import annotations

from collections.abc import Sequence

from fleet.drivers.base import OutcomeState, PollResult, ServerOutcome
from fleet.drivers.errors import ErrorKind
from fleet.drivers.huawei.errors import kind_of_code
from fleet.drivers.jsonutil import as_dict, as_list, opt_str

_STATES = {
    "SUCCESS": OutcomeState.DONE,
    "FAIL": OutcomeState.FAILED,
    "RUNNING": OutcomeState.RUNNING,
    "INIT": OutcomeState.RUNNING,
}


def _outcome(server_id: str, status: str, code: str | None, reason: str | None) -> ServerOutcome:
    state = _STATES.get(status.upper(), OutcomeState.RUNNING)
    if state is not OutcomeState.FAILED:
        return ServerOutcome(server_id, state)
    kind = kind_of_code(code) or ErrorKind.PERMANENT
    return ServerOutcome(
        server_id,
        state,
        code=code,
        reason=reason or "the cloud job failed without a reason",
        kind=kind.value,
    )


def parse_job(data: object, server_ids: Sequence[str]) -> PollResult:
    """The outcome of every server in `server_ids` from one job body; without ids, of every
    server the job's sub-jobs name (a create's job, read back as evidence)."""
    job = as_dict(data)
    job_status = (opt_str(job.get("status")) or "RUNNING").upper()
    entities = as_dict(job.get("entities"))
    by_server: dict[str, ServerOutcome] = {}
    for raw in as_list(entities.get("sub_jobs")):
        sub = as_dict(raw)
        sub_entities = as_dict(sub.get("entities"))
        sid = opt_str(sub_entities.get("server_id"))
        if not sid:
            continue
        reason = opt_str(sub.get("fail_reason")) or opt_str(sub_entities.get("errorcode_message"))
        by_server[sid] = _outcome(
            sid, opt_str(sub.get("status")) or "RUNNING", opt_str(sub.get("error_code")), reason
        )
    job_code = opt_str(job.get("error_code"))
    job_reason = opt_str(job.get("fail_reason"))
    outcomes = {
        sid: by_server.get(sid) or _outcome(sid, job_status, job_code, job_reason)
        for sid in server_ids
    }
    if not server_ids:  # a create's job: every server it names (its ids are not known before)
        outcomes = by_server
    return PollResult(outcomes=outcomes, job_status=job_status)


def job_id_of(data: object) -> str | None:
    return opt_str(as_dict(data).get("job_id"))
