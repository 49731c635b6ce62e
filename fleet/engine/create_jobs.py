"""A Huawei create's job as evidence for a planned server its listing does not show (D44).

The listing by identity (`fleet.engine.creating`) is the first evidence; where a planned server is
not listed and the sub-job knows the cloud job of a call that was accepted for it (the poll's
`cloud_job_id`; for a verification, the `job_id` kept in its memo when that call was accepted, which
survives a retry), the job says which of three it is:

- **running** (the job or one of its servers still `RUNNING`/`INIT`): the server may yet appear;
  nothing is sent, the sub-job follows the job;
- **failed**: the job ended and a server it names that is not listed failed (or the job itself
  failed): the create did not make it, with the vendor's code and reason;
- **gone**: the job succeeded for every server it names, yet the planned server is not listed:
  it was made and then deleted; never created a second time.

A job that cannot be read (an id the cloud no longer knows, a failing call) is no evidence: the
listing alone decides, as before. Instance actions add nothing here: they are read per server,
and a server found by its identity is already the evidence.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from fleet.domain import Action
from fleet.drivers.base import Driver, OutcomeState, PollResult, Submission
from fleet.drivers.errors import DriverError
from jobs.records import SubJobRecord

RUNNING_WORDS = frozenset({"RUNNING", "INIT"})


class JobSays(StrEnum):
    RUNNING = "running"
    FAILED = "failed"
    GONE = "gone"


@dataclass(frozen=True)
class JobEvidence:
    says: JobSays
    job_id: str
    code: str | None = None
    reason: str | None = None


def remembered_job(sj: SubJobRecord) -> str | None:
    """The job of the last call accepted for `sj` (kept in its memo across retries)."""
    memo = sj.memo or {}
    value = memo.get("job_id")
    return value if isinstance(value, str) and value else None


async def read_job(driver: Driver, job_id: str) -> PollResult | None:
    spec = driver.capabilities.spec(Action.CREATE)
    try:
        return await driver.poll(Submission(Action.CREATE, (), spec.api_class, job_id=job_id))
    except DriverError:
        return None


def judge(job_id: str, job: PollResult, listed: Collection[str]) -> JobEvidence:
    """What `job` says of a planned server that is not listed (`listed`: the ids that are)."""
    word = (job.job_status or "RUNNING").upper()
    outcomes = job.outcomes.values()
    if word in RUNNING_WORDS or any(o.state is OutcomeState.RUNNING for o in outcomes):
        return JobEvidence(JobSays.RUNNING, job_id)
    unlisted = [o for o in outcomes if o.server_id not in listed]
    failed = [o for o in unlisted if o.state is OutcomeState.FAILED]
    if failed:
        return JobEvidence(JobSays.FAILED, job_id, failed[0].code, failed[0].reason)
    if word == "FAIL":
        return JobEvidence(JobSays.FAILED, job_id, None, f"cloud job {job_id} failed")
    return JobEvidence(
        JobSays.GONE,
        job_id,
        None,
        f"cloud job {job_id} created it, and no server with its identity is listed now"
        " (deleted?): not created again",
    )


async def evidence(
    driver: Driver, job_ids: Collection[str], listed: Collection[str]
) -> dict[str, JobEvidence]:
    """Each readable job's evidence, one read per job."""
    out: dict[str, JobEvidence] = {}
    for job_id in sorted(set(job_ids)):
        job = await read_job(driver, job_id)
        if job is not None:
            out[job_id] = judge(job_id, job, listed)
    return out
