"""Calls that make servers (`Goal.CREATED`): sent, followed and verified by their identity.

A create sub-job stands for one planned server (`slot` n, named from the template). What makes a
second server for the same planned one impossible (decision D41):

- **the identity is written before the call**: the planned server's number and the operation are
  on the sub-job from planning on; the name the call gives follows from them alone (one server
  per call: the planned name; a batch: `templates.batch_base` of its first server, the cloud
  numbering the others), and every server carries `fleet-op=<operation id>`;
- **a batch names consecutive servers only**: the claimed sub-jobs are sent from the first up to
  the first gap (the others go back to the queue, nothing sent for them), so a name read back
  says which planned server it is;
- **after a crash or an ambiguous answer, the cloud is read first**: one listing of the
  operation's servers (`fleet-op`), and a planned server found there is followed, never created
  again; only the missing ones are sent, in a new call (so under a new base name).

Completion is read from that same listing: the server running is success (the sub-job's reason
names its id), ERROR is the failure with the cloud's fault, anything else is still building.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from fleet.domain import Action, ActionParams, ServerRef, ServerStatus
from fleet.drivers.base import CreateRequest, Driver
from fleet.drivers.config import ConfigError, SecretRef
from fleet.drivers.errors import DriverError, ErrorKind, Throttled, Transient
from fleet.engine.calls import earliest
from fleet.engine.create_jobs import JobEvidence, JobSays, evidence, remembered_job
from fleet.engine.templates import OP_TAG, batch_base, literal_prefix, slot_of, stem
from jobs.outcomes import (
    Accepted,
    Completed,
    Failed,
    Outcome,
    Resubmit,
    RetryLater,
    StillRunning,
)
from jobs.records import Batch, SubJobRecord
from jobs.types import JSONValue

CREATE_FAILED = "create_failed"
LATER = "sent with a later call: a batch names consecutive servers only"


def slot(sj: SubJobRecord) -> int:
    value = sj.payload.get("slot")
    return int(value) if isinstance(value, int | str) else 0


def _run(subjobs: Sequence[SubJobRecord], max_batch: int) -> list[SubJobRecord]:
    """The claimed sub-jobs of consecutive planned servers from the first, up to `max_batch`."""
    ordered = sorted(subjobs, key=slot)
    run = ordered[:1]
    for sj in ordered[1:]:
        if len(run) >= max_batch or slot(sj) != slot(run[-1]) + 1:
            break
        run.append(sj)
    return run


def admin_password(reference: str | None) -> str | None:
    """The admin password from its reference, read now and never kept (ConfigError says why it
    cannot be read, never the value)."""
    if reference is None:
        return None
    scheme, _, where = reference.partition(":")
    ref = SecretRef(env=where) if scheme == "env" else SecretRef(file=where)
    return ref.resolve().reveal()


def request_for(
    batch: Batch, run: Sequence[SubJobRecord], driver: Driver, params: ActionParams
) -> CreateRequest:
    create = params.create
    assert create is not None  # parse_params gives a creating kind its request
    batched = driver.capabilities.spec(Action.CREATE).max_batch > 1
    first = run[0]
    name = (
        batch_base(create.name, batch.operation_id, slot(first))
        if batched
        else str(first.payload["name"])
    )
    return CreateRequest(
        name=name,
        count=len(run),
        flavor=params.flavor or "",
        image=create.image,
        network=create.network,
        tags={**params.tags, OP_TAG: batch.operation_id},
        vpc=create.vpc,
        availability_zone=create.availability_zone,
        key_name=create.key_name,
        admin_password=admin_password(create.admin_password),
    )


def _refused(exc: DriverError) -> Outcome:
    code = exc.code or exc.kind.value
    if isinstance(exc, Throttled):
        return RetryLater(delay=exc.retry_after, reason=str(exc), throttled=True, code=code)
    if isinstance(exc, Transient):
        return RetryLater(reason=str(exc), code=code, maybe_sent=exc.ambiguous)
    return Failed(code=code, reason=exc.message, retryable=exc.kind is ErrorKind.AUTH)


async def submit(
    batch: Batch, driver: Driver, params: ActionParams, first_poll: float | None
) -> dict[int, Outcome]:
    """ONE create call for the first run of consecutive planned servers of the batch."""
    run = _run(batch.subjobs, driver.capabilities.spec(Action.CREATE).max_batch)
    sent = {sj.id for sj in run}
    outcomes: dict[int, Outcome] = {
        sj.id: RetryLater(delay=0.0, reason=LATER) for sj in batch.subjobs if sj.id not in sent
    }
    try:
        request = request_for(batch, run, driver, params)
    except ConfigError as exc:
        failed = Failed(code="admin_password", reason=f"params.admin_password: {exc}")
        return outcomes | {sj.id: failed for sj in run}
    try:
        submission = await driver.create(request)
    except DriverError as exc:
        return outcomes | {sj.id: _refused(exc) for sj in run}
    memo: dict[str, JSONValue] = {"created_as": request.name, "count": request.count}
    if submission.job_id:
        memo["job_id"] = submission.job_id  # evidence for a later verification (create_jobs)
    if submission.since:
        memo["since"] = submission.since  # the cloud's clock at acceptance: polls list less
    for sj in run:
        outcomes[sj.id] = Accepted(
            cloud_job_id=submission.job_id,
            request_id=submission.request_id,
            memo=memo,
            poll_after=first_poll,
        )
    return outcomes


# --- reading the operation's servers back ------------------------------------------------------


async def found(
    driver: Driver, params: ActionParams, operation_id: str, since: str | None = None
) -> list[ServerRef]:
    """Every server of the operation on the endpoint, one listing: by its `fleet-op` tag (or what
    the dialect wrote instead, `Driver.list_created`), among the names the operation gives;
    with `since`, those changed since then where the dialect can filter so."""
    create = params.create
    assert create is not None
    batched = driver.capabilities.spec(Action.CREATE).max_batch > 1
    prefix = f"{stem(create.name, operation_id)}-" if batched else literal_prefix(create.name)
    return [s async for s in driver.list_created((OP_TAG, operation_id), prefix, since)]


def matcher(
    driver: Driver, params: ActionParams, operation_id: str
) -> Callable[[Sequence[ServerRef]], Callable[[SubJobRecord], ServerRef | None]]:
    """How planned servers are recognised among the operation's servers: by the planned name
    (one server per call), or by the number its batch name stands for (a batch API). The
    listing is indexed once, so a poll of n planned servers costs O(n), not O(n^2)."""
    create = params.create
    assert create is not None
    batched = driver.capabilities.spec(Action.CREATE).max_batch > 1

    def identity(server: ServerRef) -> object:
        return slot_of(server.name, create.name, operation_id) if batched else server.name

    def planned(sj: SubJobRecord) -> object:
        return slot(sj) if batched else sj.payload.get("name")

    def index(servers: Sequence[ServerRef]) -> Callable[[SubJobRecord], ServerRef | None]:
        best: dict[object, ServerRef] = {}
        for server in servers:
            key = identity(server)
            if key is None:
                continue
            # a build that failed stays listed in ERROR: after a retry the new server is the one
            held = best.get(key)
            if held is None or _rank(server) < _rank(held):
                best[key] = server
        return lambda sj: best.get(planned(sj))

    return index


def _rank(server: ServerRef) -> tuple[bool, str]:
    return (server.status is ServerStatus.ERROR, server.id)


def state_of(server: ServerRef) -> Outcome:
    """What the server found for a planned one says of its create."""
    if server.status is ServerStatus.ERROR:  # it stays listed: its id says which to clean up
        fault = server.fault or "the server settled in ERROR"
        return Failed(code=CREATE_FAILED, reason=f"{fault} (server {server.id})")
    if server.status in (ServerStatus.DELETED, ServerStatus.DELETING):
        return Failed(code=CREATE_FAILED, reason=f"server {server.id} was deleted")
    if server.settled and not server.fault:
        return Completed(
            reason=f"created {server.id} ({server.name})", memo={"server_id": server.id}
        )
    return StillRunning()


async def _read(
    batch: Batch, driver: Driver, params: ActionParams, since: str | None = None
) -> tuple[Mapping[int, ServerRef | None], set[str], Outcome | None]:
    try:
        servers = await found(driver, params, batch.operation_id, since)
    except DriverError as exc:
        return {}, set(), RetryLater(reason=str(exc), code=exc.code or exc.kind.value)
    match = matcher(driver, params, batch.operation_id)(servers)
    return {sj.id: match(sj) for sj in batch.subjobs}, {s.id for s in servers}, None


async def _jobs(
    driver: Driver, wanted: Mapping[int, str | None], listed: set[str]
) -> dict[int, JobEvidence]:
    """The job evidence of each unlisted sub-job that knows its job (`create_jobs`)."""
    ids = {j for j in wanted.values() if j}
    said = await evidence(driver, ids, listed) if ids else {}
    return {sj_id: said[j] for sj_id, j in wanted.items() if j and j in said}


async def poll(batch: Batch, driver: Driver, params: ActionParams) -> dict[int, Outcome]:
    """Follow accepted creates: a planned server not listed yet is still being created, unless
    its cloud job says it failed or made it and it is gone.

    Where every call of the batch was accepted at a known time (the cloud's clock), the listing
    asks for the servers changed since the earliest (a create's server changes when it settles),
    so a poll reads the servers still being made, not all the operation has made; a planned
    server that listing lacks is looked for in the whole listing, as without a time."""
    since = _since(batch)
    seen, listed, error = await _read(batch, driver, params, since)
    if error is None and since is not None and any(v is None for v in seen.values()):
        seen, listed, error = await _read(batch, driver, params)
    if error is not None:
        return {sj.id: error for sj in batch.subjobs}
    missing = {sj.id: sj.cloud_job_id for sj in batch.subjobs if seen[sj.id] is None}
    jobs = await _jobs(driver, missing, listed)
    out: dict[int, Outcome] = {}
    for sj in batch.subjobs:
        server, said = seen[sj.id], jobs.get(sj.id)
        if server is not None:
            out[sj.id] = state_of(server)
        elif said is None or said.says is JobSays.RUNNING:
            out[sj.id] = StillRunning()
        else:
            out[sj.id] = Failed(code=said.code or CREATE_FAILED, reason=said.reason or "")
    return out


def _since(batch: Batch) -> str | None:
    """The earliest acceptance time among the batch's calls, None unless each has one."""
    return earliest((sj.memo or {}).get("since") for sj in batch.subjobs)


async def verify(batch: Batch, driver: Driver, params: ActionParams) -> dict[int, Outcome]:
    """After a send that may have reached the cloud: a planned server the cloud has is followed,
    never created again; one it does not list is created again only when nothing says the
    cloud made or is making it (the job of a call accepted for it: `create_jobs`)."""
    seen, listed, error = await _read(batch, driver, params)
    if error is not None:
        return {sj.id: error for sj in batch.subjobs}
    missing = {sj.id: remembered_job(sj) for sj in batch.subjobs if seen[sj.id] is None}
    jobs = await _jobs(driver, missing, listed)
    return {
        sj.id: state_of(server)
        if (server := seen[sj.id]) is not None
        else _unlisted(jobs.get(sj.id))
        for sj in batch.subjobs
    }


def _unlisted(said: JobEvidence | None) -> Outcome:
    if said is None or said.says is JobSays.FAILED:
        return Resubmit(reason="no server with this identity: create it")
    if said.says is JobSays.RUNNING:
        return Accepted(cloud_job_id=said.job_id, memo={"job_id": said.job_id})
    return Failed(code=CREATE_FAILED, reason=said.reason or "")
