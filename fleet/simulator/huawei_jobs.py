"""Huawei v1 asynchronous jobs, shared by ECS and BMS: batch checks, sub-jobs, `GET .../jobs/{id}`.

A batch call (start/stop/reboot/delete, and resize as a batch of one) is checked as a whole before
anything happens, so a refused call changes nothing and can simply be fixed and resent:
- an id that is unknown, deleted, of another project or of the other surface's kind (an ECS id on
  the BMS API or the reverse): 404 `Ecs.0114` "The ECS does not exist.";
- a locked server: 400 `Ecs.0605` "ECS locked.";
- a server with an action still in progress: 501 `Ecs.0603` ("Try again 1 minute later.").
The answer has the batch-operation shape of digest §4.3: `error` plus one `internalError` entry
per refused id. `error` carries the refused servers' code and HTTP status when they all share one,
and 400 `Ecs.0611` "Batch operation failed." when they differ.

An accepted call answers `{"job_id": ...}` (200) and creates one sub-job per server. Where the
seeds are silent (digest §7.3) the simulator decides: a server not in the status the action needs
(start needs SHUTOFF; stop and reboot need ACTIVE) is left untouched and its sub-job FAILs after
`PRECONDITION_SECONDS` with `Ecs.0100` "The ECS status does not meet requirements...", the
documented code for exactly that. A server marked with the `job_fail` fault FAILs when its action
settles, with the fault's code and reason, and returns to its previous status.

Job status (digest A-17 leaves the roll-up open): INIT for the first simulated second, RUNNING
while any sub-job runs, then FAIL if any sub-job failed, else SUCCESS. The job's own
`error_code`/`fail_reason` are those of its first failed sub-job. Timestamps are
`YYYY-MM-DDTHH:MM:SS.mmmZ`; `end_time` is null until the job (or sub-job) ends. Job ids are 32 hex
digits like the seeds'. `job_type` names are the simulator's own (the seeds name none for these
operations): clients must not depend on them. An unknown job id: 400 `Common.0011`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web

from fleet.simulator import huawei_iam
from fleet.simulator.core import HUAWEI, SimReply, admit, ctx_of, json_response, read_json
from fleet.simulator.world import BMS, ECS, CloudJob, Server, SimClock, SubJob, World, iso_ms

# HTTP status and documented message (seed 001 Appendix A.2) of the codes the simulator answers.
ERRORS: dict[str, tuple[int, str]] = {
    "Ecs.0204": (400, "Failed to create the ECS. Try again later or contact customer service."),
    "Ecs.0064": (400, "The VPC ID in the request is inconsistent with that in the main subnet ID."),
    "Ecs.0038": (400, "The subnet does not exist."),
    "Ecs.0031": (400, "The image does not exist."),
    "Ecs.0001": (400, "Insufficient ECS quota. Contact customer service to increase quota."),
    "Ecs.0005": (400, "request body is illegal."),
    "Ecs.0029": (400, "The flavor does not exist."),
    "Ecs.0100": (
        400,
        "The ECS status does not meet requirements. Make the ECS in the required status and "
        "try again.",
    ),
    "Ecs.0114": (404, "The ECS does not exist."),
    "Ecs.0118": (400, "The number of ECSs exceeds the maximum allowed limit."),
    "Ecs.0603": (501, "The commands are being executed. Try again later."),
    "Ecs.0605": (400, "ECS locked."),
    "Ecs.0611": (400, "Batch operation failed."),
    "Ecs.0614": (404, "The ECS does not exist."),
    "Ecs.0810": (400, "The ECS flavor is the same as the target flavor."),
    "Ecs.0905": (400, "The number of tags exceeds the maximum allowed limit."),
    "Ecs.0906": (400, "Failed to comply with tag character set specifications."),
    "Ecs.0907": (400, "Invalid tag character set."),
    "Ecs.0908": (400, "The tag key cannot be duplicate."),
    "Common.0011": (400, "Failed to query system tasks."),
}
MAX_BATCH = 1000  # "A maximum of 1,000 ECSs can be deleted in a batch." (seed 001 §5.1.2)
PRECONDITION_SECONDS = 2.0  # how long a sub-job refused for its server's status "runs"


def reply(code: str, detail: str | None = None) -> SimReply:
    """The Huawei v1 error `{"error": {"code", "message"}}` for a documented code."""
    status, message = ERRORS[code]
    if detail:
        message = f"{message.rstrip('.')}: {detail}"
    return SimReply(json_response({"error": {"code": code, "message": message}}, status=status))


def hex_id() -> str:
    return uuid.uuid4().hex


def server_ids(data: dict[str, object], key: str = "servers") -> list[str]:
    """The ids of a `"servers": [{"id": ...}, ...]` list; `Ecs.0005`/`Ecs.0118` when malformed."""
    items = data.get(key)
    if not isinstance(items, list) or not items:
        raise reply("Ecs.0005", f"{key} must be a non-empty list of {{'id': ...}}")
    ids = [item.get("id") if isinstance(item, dict) else None for item in items]
    if not all(isinstance(i, str) and i for i in ids):
        raise reply("Ecs.0005", f"every item of {key} needs a string id")
    if len(ids) > MAX_BATCH:
        raise reply("Ecs.0118", f"at most {MAX_BATCH} servers per request")
    if len(set(ids)) != len(ids):
        raise reply("Ecs.0005", f"{key} lists a server twice")
    return [str(i) for i in ids]


def loose_ids(data: dict[str, object], key: str) -> list[str]:
    """Best-effort ids for the request log and the rate limit, before the body is validated."""
    items = data.get(key)
    if not isinstance(items, list):
        return []
    return [str(i["id"]) for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)]


def find(world: World, server_id: str, kind: str, project_id: str) -> Server | None:
    """A live server of `kind` in `project_id`, or None (what every surface calls "not found")."""
    s = world.servers.get(server_id)
    if s is None or s.kind != kind or s.project_id != project_id or s.deleted_at is not None:
        return None
    return s


def problem(server: Server | None) -> str | None:
    if server is None:
        return "Ecs.0114"
    if server.locked:
        return "Ecs.0605"
    if server.busy:
        return "Ecs.0603"
    return None


def check_batch(world: World, ids: list[str], kind: str, project_id: str) -> list[Server]:
    """All servers of a batch, or the batch-operation error naming every refused id."""
    found = {i: find(world, i, kind, project_id) for i in ids}
    refused = [(i, code) for i, s in found.items() if (code := problem(s)) is not None]
    if refused:
        raise batch_refusal(refused)
    return [s for s in found.values() if s is not None]


def batch_refusal(refused: list[tuple[str, str]]) -> SimReply:
    codes = {code for _, code in refused}
    top = codes.pop() if len(codes) == 1 else "Ecs.0611"
    status, message = ERRORS[top]
    body = {
        "error": {"code": top, "message": message},
        "internalError": [
            {"id": i, "error_code": code, "error_message": ERRORS[code][1]} for i, code in refused
        ],
    }
    return SimReply(json_response(body, status=status))


@dataclass(frozen=True)
class Action:
    """How one v1 action moves a server (digest Table A-4) and how its job is named."""

    duration: str  # key of World.durations
    needs: tuple[str, ...] | None  # statuses the server must be in (None: any)
    interim: str | None  # status while it runs (None: keep the current one)
    task_state: str
    end: tuple[str, str, int]
    job_type: str  # a key of SUB_JOB_TYPES


# The simulator's job type -> the type of its sub-jobs.
SUB_JOB_TYPES: dict[str, str] = {
    "batchStartServers": "startServer",
    "batchStopServers": "stopServer",
    "batchRebootServers": "rebootServer",
    "deleteServers": "deleteServer",
    "resizeServer": "resizeServer",
    "batchStartBaremetalServers": "startBaremetalServer",
    "batchStopBaremetalServers": "stopBaremetalServer",
    "batchRebootBaremetalServers": "rebootBaremetalServer",
    "deleteBaremetalServers": "deleteBaremetalServer",
    "createServer": "createSingleServer",  # the seeds' names (digest §4.1)
    "createBaremetalServers": "createSingleBaremetalServer",
}


def start_job(
    world: World, servers: list[Server], action: Action, kind: str, project_id: str
) -> CloudJob:
    """Begin `action` on every server that may take it and record the job with its sub-jobs."""
    now = world.clock.seconds()
    parts: list[SubJob] = []
    for s in servers:
        if action.needs is not None and s.status not in action.needs:
            reason = f"{ERRORS['Ecs.0100'][1]} (status is {s.status})"
            parts.append(SubJob(hex_id(), s.id, now + PRECONDITION_SECONDS, ("Ecs.0100", reason)))
            continue
        t = world.begin(
            s,
            action.duration,
            interim=(action.interim or s.status, action.task_state),
            end=action.end,
        )
        parts.append(SubJob(hex_id(), s.id, t.done_at, t.fail))
    return world.new_job(action.job_type, kind, project_id, parts)


def _at(clock: SimClock, now: float, moment: float) -> str:
    return iso_ms(clock.now() - timedelta(seconds=max(0.0, now - moment)))


def sub_job_json(job: CloudJob, sub: SubJob, now: float, clock: SimClock) -> dict[str, object]:
    status = job.sub_status(sub, now)
    fail = sub.fail if status == "FAIL" else None
    entities: dict[str, object] = {"server_id": sub.server_id}
    if fail is not None:
        entities["errorcode_message"] = fail[1]
    return {
        "status": status,
        "entities": entities,
        "job_id": sub.id,
        "job_type": SUB_JOB_TYPES.get(job.job_type, job.job_type),
        "begin_time": iso_ms(job.begin_time),
        "end_time": _at(clock, now, sub.done_at) if status in ("SUCCESS", "FAIL") else None,
        "error_code": fail[0] if fail is not None else None,
        "fail_reason": fail[1] if fail is not None else None,
    }


def job_json(job: CloudJob, world: World) -> dict[str, object]:
    """The §4.1 job document as of now."""
    now = world.clock.seconds()
    subs = [sub_job_json(job, s, now, world.clock) for s in job.sub_jobs]
    first_fail = next((s for s in subs if s["status"] == "FAIL"), None)
    entities: dict[str, object] = {"sub_jobs_total": len(subs), "sub_jobs": subs}
    if len(subs) == 1 and job.job_type in _SINGLE_SERVER_TYPES:
        entities["server_id"] = job.sub_jobs[0].server_id
    end = job.end_time(now, world.clock)
    return {
        "status": job.status(now),
        "entities": entities,
        "job_id": job.id,
        "job_type": job.job_type,
        "begin_time": iso_ms(job.begin_time),
        "end_time": iso_ms(end) if end is not None else None,
        "error_code": first_fail["error_code"] if first_fail else None,
        "fail_reason": first_fail["fail_reason"] if first_fail else None,
    }


OPERATIONS = {"os-start": "start", "os-stop": "stop", "reboot": "reboot"}


async def batch_action(
    request: web.Request,
    *,
    kind: str,
    rate_key: str,
    choose: Callable[[str, dict[str, object]], Action],
) -> web.Response:
    """A batch start/stop/reboot on `kind` servers: `{"<operation>": {..., "servers"}}`."""
    world = ctx_of(request).world
    project_id = request.match_info["project_id"]
    await huawei_iam.authenticate(request, project_id)
    data = await read_json(request, HUAWEI)
    keys = [k for k in OPERATIONS if k in data]
    op = data.get(keys[0]) if len(keys) == 1 else None
    logged = loose_ids(op, "servers") if isinstance(op, dict) else []
    name = OPERATIONS[keys[0]] if len(keys) == 1 else None
    await admit(request, dialect=HUAWEI, rate_key=rate_key, servers=logged, action=name)
    if not isinstance(op, dict) or len(data) != 1:
        raise reply("Ecs.0005", "the body must hold exactly one of os-start, os-stop, reboot")
    action = choose(keys[0], op)
    servers = check_batch(world, server_ids(op), kind, project_id)
    job = start_job(world, servers, action, kind, project_id)
    return json_response({"job_id": job.id})


# Jobs about one server (resize) also carry `entities.server_id` ("If the task is an ECS-related
# operation, the value is server_id", seed 001 §5.8.1).
_SINGLE_SERVER_TYPES = {"resizeServer"}


async def get_job(request: web.Request) -> web.Response:
    """`GET /v1/{project_id}/jobs/{job_id}` (ECS and BMS share the path and the job store)."""
    ctx = ctx_of(request)
    project_id = request.match_info["project_id"]
    await huawei_iam.authenticate(request, project_id)
    job = ctx.world.jobs.get(request.match_info["job_id"])
    kind = job.kind if job is not None and job.kind in (ECS, BMS) else ECS
    await admit(request, dialect=HUAWEI, rate_key=f"huawei-{kind}:jobs", action="show_job")
    if job is None or job.project_id != project_id:
        raise reply("Common.0011", "Invalid job ID.")
    ctx.world.settle()
    return json_response(job_json(job, ctx.world))


def setup(app: web.Application) -> None:
    """Register the shared job route (called once, from the ECS dialect's setup)."""
    app.router.add_get("/v1/{project_id}/jobs/{job_id}", get_job)
