"""The Protocols the product implements to plug into the engine (and the engine's own store).

The engine deals only in opaque `kind`, `target_id`, `payload`, `rate_key` and `batch_key`:

- a **Planner** resolves an operation's selector into `PlanItem`s (one per server, possibly
  skipped with a reason) and reports each scope's fleet size for the blast-radius guard;
- an **Executor** makes ONE cloud call for a batch of claimed sub-jobs that share a batch key,
  polls ONE cloud job (or one status read) for sub-jobs awaiting it, and verifies sub-jobs whose
  earlier send may or may not have reached the cloud; it returns an `Outcome` per sub-job id;
- a **RateLimiter** (`jobs.ratelimit.RateLimiter` in production): the dispatcher reads
  `headroom()` before claiming; the executor's driver calls `acquire()` before every HTTP call and
  reports throttling answers through its own gate, so the engine never acquires or reports twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeAlias

from jobs.approval import Decision
from jobs.outcomes import Outcome
from jobs.ratelimit import Headroom, KeyState
from jobs.records import (
    ActiveOperation,
    Applied,
    Batch,
    Change,
    ClaimRequest,
    EventRecord,
    NewOperation,
    OperationRecord,
    OperationView,
    Page,
    PlanSummary,
    SubJobRecord,
)
from jobs.states import State
from jobs.types import JSONMapping

# --- planning -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanItem:
    """One resolved target. With `skip_reason` it is recorded as SKIPPED and never dispatched.

    `scope` groups targets for the blast-radius percentage (normally the endpoint's name).
    """

    target_id: str
    rate_key: str
    batch_key: str
    payload: JSONMapping = field(default_factory=dict)
    skip_reason: str | None = None
    scope: str = ""


@dataclass(frozen=True)
class FleetSize:
    """How many servers the scope (endpoint) has in all: the blast-radius percentage's base."""

    scope: str
    servers: int


PlanEntry: TypeAlias = PlanItem | FleetSize


class Planner(Protocol):
    def plan(self, operation: OperationRecord) -> AsyncIterator[PlanEntry]:
        """Stream the operation's targets (an async generator). Raise `jobs.errors.PlanningError`
        to refuse permanently; other exceptions are retried a few times, then refuse."""
        ...


# --- execution ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepProfile:
    """One step of an action as the plan counts it (calls, servers, cloud time)."""

    max_batch: int  # servers per cloud call at this step (1 = no batch API)
    seconds: float = 0.0  # typical time for the cloud to finish this step (for the ETA)
    rate_key: str | None = None  # the key this step's calls are sent on (None: the target's own)
    # Only for targets that were running when planned (`jobs.plan.was_running`); the others pass
    # this step over without a call.
    only_if_running: bool = False
    # A compensation step (undoing a failed step): never on the way of a target that succeeds,
    # so the plan counts no call and no time for it.
    on_failure_only: bool = False


@dataclass(frozen=True)
class ActionProfile:
    """How the executor performs a kind of action: its steps, and how status reads batch."""

    steps: tuple[StepProfile, ...]
    poll_batch: int = 1  # sub-jobs without a cloud job that one status read covers

    def step(self, index: int) -> StepProfile:
        return self.steps[min(max(index, 0), len(self.steps) - 1)]


SubJobOutcomes: TypeAlias = Mapping[int, Outcome]  # sub-job id -> outcome


class Executor(Protocol):
    def profile(self, kind: str, rate_key: str | None = None) -> ActionProfile:
        """How `kind` is performed; with `rate_key`, as the API behind that key does it (batch
        sizes differ between dialects: one operation may span a batch API and a per-server one)."""
        ...

    async def submit(self, batch: Batch) -> SubJobOutcomes:
        """Make ONE cloud call for the batch (every sub-job shares kind, step and batch key)."""
        ...

    async def poll(self, batch: Batch) -> SubJobOutcomes:
        """Poll ONCE: the sub-jobs share a cloud job id, or none of them has one (status read)."""
        ...

    async def verify(self, batch: Batch) -> SubJobOutcomes:
        """Read the cloud for sub-jobs whose earlier send may have happened (verify_first).
        Return `Resubmit` where the cloud shows no trace of it, so it can be sent again."""
        ...

    async def cloud_clock(self, rate_key: str) -> datetime | None:
        """The latest time the clock of the cloud behind `rate_key` showed (None: unknown), kept
        by the sub-jobs claimed to be sent (`ClaimRequest.cloud_floor`)."""
        ...


class RateLimiter(Protocol):
    def headroom(self, key: str, ahead: float = 0.0) -> Headroom: ...

    async def acquire(self, key: str, servers: int = 1) -> None: ...

    def on_throttled(self, key: str, retry_after: float | None) -> None: ...

    def state(self, key: str) -> KeyState: ...


class Wakeups(Protocol):
    """Word from other processes that work appeared for this one's loops (on PostgreSQL
    `jobs.store.notify.PgListener`). While `listening`, idle loops sleep
    `EngineConfig.listen_idle`; the word is best-effort, so that sleep is the fallback."""

    @property
    def listening(self) -> bool: ...

    async def start(self, wake: Callable[[str], None]) -> None:
        """Call `wake(topic)` from now on: "planning", "dispatch", or "all"."""
        ...

    async def stop(self) -> None: ...


# --- the store ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewSubJob:
    """A planned row for `JobStore.insert_subjobs` (state PENDING, or SKIPPED with a reason)."""

    seq: int
    target_id: str
    rate_key: str
    batch_key: str
    payload: JSONMapping
    skip_reason: str | None = None


@dataclass(frozen=True)
class PlanProgress:
    """What planning has planned so far, given with rows that open their operation to dispatch
    while the listing goes on (D101)."""

    targets: int
    skipped: int
    rate_keys: tuple[str, ...]


@dataclass(frozen=True)
class CallResult:
    """How a cloud call ended, recorded on its `cloud_calls` row with the sub-jobs' changes."""

    call_id: int
    outcome: str
    cloud_job_id: str | None = None
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class JobStore(Protocol):
    """Everything the loops and the operation API need from persistence (see `jobs.store`).

    Every method takes the time it should use (`now`): the store never reads a clock.
    """

    async def create_operation(
        self, new: NewOperation, now: datetime
    ) -> tuple[OperationRecord, bool]: ...

    async def get_operation(self, operation_id: str) -> OperationRecord | None: ...

    async def list_operations(self, cursor: str | None, limit: int) -> Page[OperationRecord]: ...

    async def get_view(self, operation_id: str) -> OperationView | None: ...

    async def list_views(self, cursor: str | None, limit: int) -> Page[OperationView]: ...

    async def counts(self, operation_ids: Sequence[str]) -> dict[str, dict[State, int]]: ...

    async def list_subjobs(
        self, operation_id: str, state: State | None, cursor: str | None, limit: int
    ) -> Page[SubJobRecord]: ...

    async def list_events(self, operation_id: str, after: int, limit: int) -> list[EventRecord]: ...

    async def follow(
        self, operation_id: str, after: int, limit: int
    ) -> tuple[list[EventRecord], OperationView] | None:
        """`list_events` and `get_view` from one snapshot (None: no such operation)."""
        ...

    async def finished_after(
        self, after: tuple[datetime, str] | None, limit: int
    ) -> list[OperationRecord]:
        """Finished operations (not dry runs, not refused) after the keyset (finished_at, id),
        in the order they finished."""
        ...

    async def unfinished(self, kinds: Sequence[str]) -> list[OperationRecord]:
        """Operations of `kinds` (not dry runs, not refused) that have not finished."""
        ...

    async def cancel(self, operation_id: str, by: str, now: datetime) -> OperationRecord: ...

    async def set_paused(
        self, operation_id: str, paused: bool, by: str, now: datetime
    ) -> OperationRecord: ...

    async def decide(
        self, operation_id: str, decision: Decision, by: str, note: str | None, now: datetime
    ) -> OperationRecord: ...

    async def expire_approvals(self, now: datetime) -> int: ...

    async def retry_failed(
        self, operation_id: str, by: str, now: datetime, *, include_unknown: bool = False
    ) -> int: ...

    async def claim_planning(
        self, worker: str, now: datetime, lease_until: datetime
    ) -> OperationRecord | None: ...

    async def insert_subjobs(
        self,
        operation: OperationRecord,
        rows: Sequence[NewSubJob],
        worker: str,
        now: datetime,
        lease_until: datetime,
        progress: PlanProgress | None = None,
    ) -> int: ...

    def planned_rows(self, operation_id: str) -> AsyncIterator[list[NewSubJob]]:
        """The rows of an operation open to dispatch, kept from an earlier attempt (D101), a
        page at a time."""
        ...

    async def every_replica_streams(self, now: datetime) -> bool:
        """Whether every live replica understands an operation open to dispatch while it is
        listed (D101), so that one may be opened now."""
        ...

    async def finish_planning(
        self,
        operation_id: str,
        summary: PlanSummary,
        worker: str,
        now: datetime,
        approval: str | None = None,
    ) -> bool: ...

    async def refuse_planning(
        self,
        operation_id: str,
        reason: str,
        summary: PlanSummary | None,
        worker: str,
        now: datetime,
    ) -> bool: ...

    async def postpone_planning(
        self, operation_id: str, error: str, not_before: datetime, worker: str, now: datetime
    ) -> bool: ...

    async def active_operations(self) -> list[ActiveOperation]: ...

    async def claim_batches(
        self, request: ClaimRequest, max_batch: Sequence[int], max_groups: int = 1
    ) -> list[Batch]: ...

    async def claim_polls(
        self,
        worker: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        due_by: datetime | None = None,
    ) -> list[SubJobRecord]:
        """Lease the AWAITING rows due at `now` whose lease is free at `now`; with `due_by`,
        also a cloud job's rows due by then."""
        ...

    async def apply(
        self,
        changes: Sequence[Change],
        worker: str,
        now: datetime,
        call: CallResult | None = None,
    ) -> Applied: ...

    async def apply_many(
        self,
        items: Sequence[tuple[Sequence[Change], CallResult | None]],
        worker: str,
        now: datetime,
    ) -> list[Applied]: ...

    async def reap(self, now: datetime, reaper: str = "reaper") -> int: ...

    async def recover(self, worker: str, now: datetime) -> int: ...

    async def renew_leases(
        self, worker: str, now: datetime, until: datetime, subjob_ids: Sequence[int] = ()
    ) -> int: ...

    async def register_worker(
        self, worker: str, hostname: str, pid: int, now: datetime, until: datetime
    ) -> None: ...

    async def set_draining(self, worker: str) -> None: ...
