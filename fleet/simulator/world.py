"""The simulated world: projects, servers, flavors and their status changes on a simulated clock.

The simulator is an independent oracle written from the API digest: it never imports fleet's drivers
or domain code, so it cannot share their bugs. Status changes follow the digest's Table A-4 (Huawei)
and the EasyStack pre/post-conditions: an action puts a server into an interim status (e.g. ACTIVE +
`powering-off`) and a `Transition` settles it after a number of simulated seconds. Settling is lazy:
every request calls `World.settle()` first, so there are no background tasks to manage. It costs
what is due, not the size of the world: transitions wait in a heap of their due times, and the
server table (`ServerTable`) keeps the orders listings page through, so a page costs its own size.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from fleet.simulator.catalog import Catalog
from fleet.simulator.instance_actions import ActionLog, InstanceAction
from fleet.simulator.server_table import ServerTable

# Server kinds (which surface owns the server).
ECS, BMS, OPENSTACK = "ecs", "bms", "openstack"
KINDS = (ECS, BMS, OPENSTACK)

# Simulated seconds each action takes before the server settles.
DEFAULT_DURATIONS: dict[str, float] = {
    "start": 20.0,
    "stop": 20.0,
    "stop_hard": 5.0,
    "reboot": 30.0,
    "reboot_hard": 15.0,
    "resize": 60.0,
    "confirm_resize": 5.0,
    "revert_resize": 20.0,
    "live_resize": 30.0,
    "delete": 15.0,
    "create": 30.0,
}

# (status, vm_state, power_state) for the settled states.
RUNNING = ("ACTIVE", "active", 1)
STOPPED = ("SHUTOFF", "stopped", 4)


class SimClock:
    """Simulated time: real elapsed time times `speed`, plus whatever tests `advance` by hand."""

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._mono0 = time.monotonic()
        self._offset = 0.0
        self._wall0 = start or datetime.now(UTC)

    def seconds(self) -> float:
        """Simulated seconds since the simulator started."""
        return (time.monotonic() - self._mono0) * self.speed + self._offset

    def now(self) -> datetime:
        return self._wall0 + timedelta(seconds=self.seconds())

    def advance(self, seconds: float) -> None:
        self._offset += max(0.0, seconds)


@functools.lru_cache(maxsize=65536)
def iso(dt: datetime) -> str:
    """Nova-style timestamp: `2026-11-23T10:00:00Z` (cached: a listing formats the same creation
    times for thousands of servers on every call)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(dt: datetime) -> str:
    """Huawei job-style timestamp: `2026-11-23T10:00:00.000Z`."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int  # MiB
    disk: int  # GiB
    kind: str  # which server kind may use it


@dataclass
class Transition:
    """An action in progress on one server."""

    action: str
    done_at: float  # simulated seconds
    end_status: str
    end_vm_state: str
    end_power: int
    flavor_id: str | None = None
    old_flavor_id: str | None = None
    fail: tuple[str, str] | None = None  # (error_code, reason): the action fails when it settles
    before: tuple[str, str, int] | None = None  # status to return to on failure
    record: InstanceAction | None = None  # the instance action it is part of


@dataclass
class Server:
    id: str
    name: str
    kind: str
    project_id: str
    status: str
    vm_state: str
    power_state: int
    flavor_id: str
    created: datetime
    updated: datetime
    tags: dict[str, str] = field(default_factory=dict)  # 2D key -> value ("" for a bare 1D tag)
    metadata: dict[str, str] = field(default_factory=dict)  # Nova server metadata (from create)
    task_state: str | None = None
    old_flavor_id: str | None = None
    locked: bool = False
    deleted_at: datetime | None = None
    fault: dict[str, object] | None = None
    image_id: str = "img-0001"
    availability_zone: str = "az1"
    transition: Transition | None = None
    # Counts every change of any server's `deleted_at`: what is live is recomputed only then.
    deletions: ClassVar[int] = 0

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        if name == "deleted_at":
            Server.deletions += 1

    @property
    def busy(self) -> bool:
        return self.transition is not None


@dataclass
class SubJob:
    """One server's part of a Huawei cloud job."""

    id: str
    server_id: str
    done_at: float
    fail: tuple[str, str] | None = None


@dataclass
class CloudJob:
    """A Huawei asynchronous job (`/v1/{project_id}/jobs/{job_id}`)."""

    id: str
    job_type: str
    project_id: str
    kind: str  # ECS or BMS: which rate key its queries count against
    created: float  # simulated seconds
    begin_time: datetime
    sub_jobs: list[SubJob]

    def sub_status(self, sub: SubJob, now: float) -> str:
        if now < sub.done_at:
            return "RUNNING" if now >= self.created + 1.0 else "INIT"
        return "FAIL" if sub.fail else "SUCCESS"

    def status(self, now: float) -> str:
        if now < self.created + 1.0:
            return "INIT"
        states = [self.sub_status(s, now) for s in self.sub_jobs]
        if any(s in ("RUNNING", "INIT") for s in states):
            return "RUNNING"
        return "FAIL" if "FAIL" in states else "SUCCESS"

    def end_time(self, now: float, clock: SimClock) -> datetime | None:
        if self.status(now) not in ("SUCCESS", "FAIL"):
            return None
        last = max((s.done_at for s in self.sub_jobs), default=self.created)
        return clock.now() - timedelta(seconds=max(0.0, now - last))


@dataclass
class World:
    clock: SimClock
    huawei_project_id: str
    openstack_project_id: str
    flavors: dict[str, Flavor]
    servers: ServerTable[Server] = field(default_factory=ServerTable)
    jobs: dict[str, CloudJob] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DURATIONS))
    # server id -> (error_code, reason): the next action on that server fails (fault "job_fail").
    failing: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Does the OpenStack (EasyStack) endpoint serve the tag API? (world file `tag_api`)
    openstack_tag_api: bool = True
    openstack_instance_actions: bool = True  # EasyStack serves os-instance-actions
    # Every server's instance actions (see fleet.simulator.instance_actions).
    actions: ActionLog = field(default_factory=ActionLog)
    # (done_at, sequence, server id, transition) of every transition begun; an entry whose
    # transition is no longer its server's (interrupted, server purged) is dropped when due.
    _due: list[tuple[float, int, str, Transition]] = field(default_factory=list, repr=False)
    _seq: Iterator[int] = field(default_factory=itertools.count, repr=False)
    # (kind, project) -> ((table version, deletions), its live servers in creation order)
    _live: dict[tuple[str, str], tuple[tuple[int, int], list[Server]]] = field(
        default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.servers, ServerTable):
            self.servers = ServerTable(self.servers)

    # What a create may name (images, subnets, networks, zones) and the quotas (see `provision`).
    catalog: Catalog = field(default_factory=Catalog)
    # ECS create `X-Client-Token` (project, token) -> the answer it got (see `huawei_create`).
    client_tokens: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)

    def settle(self) -> None:
        """Apply every transition whose time has come (in the order they fall due)."""
        now = self.clock.seconds()
        due = self._due
        while due and due[0][0] <= now:
            _, _, server_id, t = heapq.heappop(due)
            server = self.servers.get(server_id)
            if server is not None and server.transition is t:
                self._finish(server, t)

    def _finish(self, server: Server, t: Transition) -> None:
        server.transition = None
        server.task_state = None
        server.updated = self.clock.now()
        if t.record is not None:
            due = server.updated - timedelta(seconds=max(0.0, self.clock.seconds() - t.done_at))
            t.record.finish(due, None if t.fail is None else t.fail[1])
        if t.fail is not None and t.before is None:  # a failed create: ERROR with a fault
            server.fault = {"code": 500, "message": t.fail[1], "created": iso(server.updated)}
        if t.fail is not None and t.before is not None:
            server.status, server.vm_state, server.power_state = t.before
            server.fault = {"code": 500, "message": t.fail[1], "created": iso(server.updated)}
            return
        server.status, server.vm_state, server.power_state = (
            t.end_status,
            t.end_vm_state,
            t.end_power,
        )
        if t.flavor_id is not None:
            server.flavor_id = t.flavor_id
        server.old_flavor_id = t.old_flavor_id
        if t.action == "delete":
            server.deleted_at = server.updated

    def begin(
        self,
        server: Server,
        action: str,
        *,
        interim: tuple[str, str | None],
        end: tuple[str, str, int],
        flavor_id: str | None = None,
        old_flavor_id: str | None = None,
    ) -> Transition:
        """Start `action` on `server`: interim (status, task_state) now, `end` when it settles."""
        now = self.clock.seconds()
        fail = self.failing.pop(server.id, None)
        t = Transition(
            action=action,
            done_at=now + self.durations.get(action, 10.0),
            end_status=end[0],
            end_vm_state=end[1],
            end_power=end[2],
            flavor_id=flavor_id,
            old_flavor_id=old_flavor_id,
            fail=fail,
            before=(server.status, server.vm_state, server.power_state),
        )
        server.transition = t
        heapq.heappush(self._due, (t.done_at, next(self._seq), server.id, t))
        server.status, server.task_state = interim
        server.fault = None
        server.updated = self.clock.now()
        t.record = self.record(server, action)
        return t

    def record(self, server: Server, action: str, *, finished: bool = False) -> InstanceAction:
        """Record an instance action on `server` by the current request's actor, now.

        `begin` records every transition; call this for actions that take no time (lock, unlock,
        a console change) with `finished=True`.
        """
        return self.actions.record(
            server.id, server.project_id, action, self.clock.now(), finished=finished
        )

    def interrupt(self, server: Server, reason: str) -> None:
        """Drop the action in progress on `server` (its instance action ends in Error)."""
        t = server.transition
        if t is not None and t.record is not None:
            t.record.finish(self.clock.now(), reason)
        server.transition = None
        server.task_state = None

    def live_in_order(self, kind: str, project_id: str) -> list[Server]:
        """The live (not deleted) servers of `kind` in `project_id`, oldest first. Kept until a
        server is added, removed or deleted, so listing pages slice it. Do not modify."""
        stamp = (self.servers.version, Server.deletions)
        cached = self._live.get((kind, project_id))
        if cached is None or cached[0] != stamp:
            live = [s for s in self.servers.in_order(kind, project_id) if s.deleted_at is None]
            cached = self._live[(kind, project_id)] = (stamp, live)
        return cached[1]

    def new_job(self, job_type: str, kind: str, project_id: str, parts: list[SubJob]) -> CloudJob:
        job = CloudJob(
            id=uuid.uuid4().hex,  # Huawei job ids are 32 hex digits (digest §4.1)
            job_type=job_type,
            project_id=project_id,
            kind=kind,
            created=self.clock.seconds(),
            begin_time=self.clock.now(),
            sub_jobs=parts,
        )
        self.jobs[job.id] = job
        return job

    def visible(self, kind: str | None = None, project_id: str | None = None) -> list[Server]:
        """Servers not (yet) purged, optionally of one kind / project, in creation order."""
        if kind is not None and project_id is not None:
            return list(self.servers.in_order(kind, project_id))
        return [
            s
            for s in self.servers.values()
            if (kind is None or s.kind == kind)
            and (project_id is None or s.project_id == project_id)
        ]


def new_id() -> str:
    return str(uuid.uuid4())
