"""Small fakes for policy tests: a cloud inventory and an engine that really stops/starts it.

`FakeCloud` satisfies `fleet.policies.targets.ServerLister` per endpoint and bumps a server's
change stamp on every change, as a cloud does. `FakeOperations` satisfies
`fleet.policies.ports.OperationsPort` with the engine's idempotency rules (same key: the earlier
operation; same key, different request: IdempotencyConflict) and, on `run(op_id)`, does what the
planner and executor would: a server already in the target state is skipped, the others change
and their sub-job succeeds.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from fleet.domain import Action, ActionParams, Provider, Selector, ServerRef, ServerStatus
from fleet.drivers.actions import Capabilities
from fleet.drivers.base import InstanceAction
from fleet.drivers.huawei.ecs import CAPABILITIES as ECS_CAPABILITIES
from fleet.drivers.nova.driver import capabilities_for
from fleet.drivers.nova.requests import EASYSTACK_QUIRKS
from fleet.engine.opspec import parse_targets
from jobs.clock import Clock
from jobs.errors import IdempotencyConflict, NotFound
from jobs.records import NewOperation, OperationRecord, OperationView, Page, SubJobRecord
from jobs.states import OperationState, State

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NO_TAGS = capabilities_for(EASYSTACK_QUIRKS)  # a dialect without a tag API


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


class Endpoint:
    def __init__(self, cloud: FakeCloud, name: str) -> None:
        self.cloud = cloud
        self.name = name

    @property
    def capabilities(self) -> Capabilities:
        """The endpoint's declarations: ECS's (every action), EasyStack's for an endpoint in
        `FakeCloud.no_tags`, or what a test set in `FakeCloud.dialects`."""
        if self.name in self.cloud.no_tags:
            return NO_TAGS
        return self.cloud.dialects.get(self.name, ECS_CAPABILITIES)

    def check(self, action: Action, params: ActionParams) -> None:
        self.capabilities.spec(action)

    async def flavors(self) -> frozenset[str]:
        return frozenset(await self.flavor_table())

    async def flavor_table(self) -> Mapping[str, str]:
        return {"s6.large.2": "s6.large.2", "s6.xlarge.2": "s6.xlarge.2"}

    async def instance_actions(self, server_id: str) -> Sequence[InstanceAction] | None:
        """The server's action history (starts and stops by hand), None on an endpoint in
        `FakeCloud.no_history` (a cloud that keeps none)."""
        if self.name in self.cloud.no_history:
            return None
        return list(self.cloud.history.get((self.name, server_id), []))

    async def list_servers(self, selector: Selector) -> AsyncIterator[ServerRef]:
        self.cloud.listings += 1
        for server in list(self.cloud.servers[self.name].values()):
            if selector.matches(server):
                yield server


class FakeCloud:
    def __init__(self) -> None:
        self.servers: dict[str, dict[str, ServerRef]] = {}
        self.dialects: dict[str, Capabilities] = {}
        self.listings = 0
        self.no_tags: set[str] = set()  # endpoints whose dialect has no tag API
        self.no_history: set[str] = set()  # endpoints whose cloud keeps no action history
        self.history: dict[tuple[str, str], list[InstanceAction]] = {}
        self._stamp = itertools.count(1)

    def add(
        self,
        endpoint: str,
        server_id: str,
        *,
        status: ServerStatus = ServerStatus.RUNNING,
        tags: Mapping[str, str] | None = None,
    ) -> ServerRef:
        server = ServerRef(
            endpoint=endpoint,
            provider=Provider.OPENSTACK,
            id=server_id,
            name=f"{endpoint}-{server_id}",
            status=status,
            tags=dict(tags or {}),
            updated=f"stamp-{next(self._stamp)}",
        )
        self.servers.setdefault(endpoint, {})[server_id] = server
        return server

    def get(self, endpoint: str, server_id: str) -> ServerRef:
        return self.servers[endpoint][server_id]

    def change(
        self,
        endpoint: str,
        server_id: str,
        *,
        status: ServerStatus | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """A change by hand (or by the engine): new status or tags, new change stamp."""
        old = self.get(endpoint, server_id)
        self.servers[endpoint][server_id] = replace(
            old,
            status=status or old.status,
            tags=dict(old.tags if tags is None else tags),
            updated=f"stamp-{next(self._stamp)}",
        )

    def by_hand(self, endpoint: str, server_id: str, status: ServerStatus, at: datetime) -> None:
        """A person starts or stops the server at `at` (recorded in its action history)."""
        self.change(endpoint, server_id, status=status)
        action = "start" if status is ServerStatus.RUNNING else "stop"
        self.history.setdefault((endpoint, server_id), []).append(
            InstanceAction(action, at, f"req-hand-{next(self._stamp)}")
        )

    def inventory(self) -> LiveInventory:
        return LiveInventory(self)


class LiveInventory(Mapping[str, Endpoint]):
    """endpoint -> lister, following endpoints added to the cloud later."""

    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud

    def __getitem__(self, name: str) -> Endpoint:
        if name not in self.cloud.servers:
            raise KeyError(name)
        return Endpoint(self.cloud, name)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.cloud.servers))

    def __len__(self) -> int:
        return len(self.cloud.servers)


def _record(op_id: str, new: NewOperation, now: datetime) -> OperationRecord:
    return OperationRecord(
        id=op_id, kind=new.kind, params=new.params, selector=new.selector,
        strategy=new.strategy, guard=new.guard, dry_run=new.dry_run, reason=new.reason,
        created_by=new.created_by, idempotency_key=new.idempotency_key, created_at=now,
        updated_at=now, planned_at=None, refused_reason=None, plan_attempts=0, targets=0,
        skipped=0, rate_keys=(), summary=None, current_wave=0, paused=False,
        cancel_requested=False, cancelled_by=None, halted_reason=None, finished_at=None,
    )  # fmt: skip


def _subjob(
    op_id: str,
    n: int,
    endpoint: str,
    server_id: str,
    state: State,
    at: datetime = T0,
    flavor: str | None = "s6.large.2",
) -> SubJobRecord:
    return SubJobRecord(
        id=n, operation_id=op_id, seq=n, target_id=f"{endpoint}/{server_id}", kind="k",
        rate_key="r", batch_key="b",
        payload={"endpoint": endpoint, "server_id": server_id, "flavor": flavor},
        memo=None, state=state, step=0, attempt=1, throttles=0, not_before=T0,
        verify_first=False, cloud_job_id=None, request_id=None, accepted_at=None,
        error_code=None, error_message=None, reason=None, lease_owner=None,
        lease_expires_at=None, call_id=None, created_at=at, updated_at=at,
    )  # fmt: skip


LEADS_TO = {"stop": ServerStatus.STOPPED, "start": ServerStatus.RUNNING}


@dataclass
class FakeOperations:
    cloud: FakeCloud
    ops: dict[str, tuple[NewOperation, OperationRecord]] = field(default_factory=dict)
    subjobs_of: dict[str, list[SubJobRecord]] = field(default_factory=dict)
    state: dict[str, OperationState] = field(default_factory=dict)
    created: list[NewOperation] = field(default_factory=list)
    clock: Clock | None = None  # stamps sub-jobs and finished operations (else T0)
    fail: set[tuple[str, str]] = field(default_factory=set)  # servers whose sub-job fails

    async def create(self, new: NewOperation) -> tuple[OperationView, bool]:
        for op_id, (old, _) in self.ops.items():
            if new.idempotency_key is not None and old.idempotency_key == new.idempotency_key:
                if json.dumps(old.fingerprint(), sort_keys=True) != json.dumps(
                    new.fingerprint(), sort_keys=True
                ):
                    raise IdempotencyConflict("different request")
                return await self.get(op_id), False
        op_id = f"op{len(self.ops) + 1}"
        self.ops[op_id] = (new, _record(op_id, new, T0 if self.clock is None else self.clock.now()))
        self.state[op_id] = OperationState.PLANNING
        self.created.append(new)
        return await self.get(op_id), True

    async def get(self, operation_id: str) -> OperationView:
        if operation_id not in self.ops:
            raise NotFound(operation_id)
        return OperationView(self.ops[operation_id][1], {}, self.state[operation_id])

    async def subjobs(
        self,
        operation_id: str,
        state: State | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[SubJobRecord]:
        rows = [s for s in self.subjobs_of.get(operation_id, []) if state in (None, s.state)]
        start = int(cursor or 0)
        page = rows[start : start + limit]
        more = start + limit < len(rows)
        return Page(tuple(page), str(start + limit) if more else None)

    async def finished_after(
        self, after: tuple[datetime, str] | None = None, limit: int = 100
    ) -> list[OperationRecord]:
        done = sorted(
            (rec for _, rec in self.ops.values() if rec.finished_at is not None),
            key=lambda r: (r.finished_at, r.id),
        )
        return [r for r in done if after is None or (r.finished_at, r.id) > after][:limit]

    async def unfinished(self, kinds: Sequence[str]) -> list[OperationRecord]:
        return [
            rec for new, rec in self.ops.values() if rec.finished_at is None and new.kind in kinds
        ]

    def run(self, operation_id: str) -> list[tuple[str, str]]:
        """Plan and execute like the engine; returns the (endpoint, id) it changed."""
        new, record = self.ops[operation_id]
        now = T0 if self.clock is None else self.clock.now()
        targets = parse_targets(new.selector)
        target_status = LEADS_TO[new.kind]
        changed: list[tuple[str, str]] = []
        rows: list[SubJobRecord] = []
        for endpoint in targets.endpoints or sorted(self.cloud.servers):
            for server in list(self.cloud.servers.get(endpoint, {}).values()):
                if not targets.selector.matches(server):
                    continue
                excluded = targets.exclude_tag is not None and (
                    server.tags.get(targets.exclude_tag[0]) == targets.exclude_tag[1]
                )
                state = State.SKIPPED
                if not excluded and server.status is not target_status and not new.dry_run:
                    if (endpoint, server.id) in self.fail:
                        state = State.FAILED
                    else:
                        self.cloud.change(endpoint, server.id, status=target_status)
                        changed.append((endpoint, server.id))
                        state = State.SUCCEEDED
                n = len(rows) + 1
                rows.append(_subjob(operation_id, n, endpoint, server.id, state, now))
        self.subjobs_of[operation_id] = rows
        self.state[operation_id] = OperationState.SUCCEEDED
        self.ops[operation_id] = (new, replace(record, finished_at=now))
        return changed
