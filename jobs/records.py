"""Frozen records the store returns and accepts (never ORM rows: rows stay inside the store)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from jobs.approval import Approval, ApprovalRules
from jobs.errors import InvalidSpec
from jobs.states import Event, OperationFlags, OperationState, State
from jobs.strategy import BlastRadius, Strategy
from jobs.types import JSONMapping, JSONObject, JSONValue

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_cursor: str | None  # None: this was the last page


@dataclass(frozen=True)
class NewOperation:
    """What the product asks for. `kind`, `params` and `selector` are opaque to the engine."""

    kind: str
    params: JSONMapping = field(default_factory=dict)
    selector: JSONMapping = field(default_factory=dict)
    strategy: Strategy = field(default_factory=Strategy)
    guard: BlastRadius | None = None
    dry_run: bool = False
    reason: str = ""
    created_by: str = ""
    idempotency_key: str | None = None
    approval: ApprovalRules | None = None  # when it must wait for another caller's approval

    def __post_init__(self) -> None:
        _check_text("kind", self.kind, 64, required=True)
        _check_text("created_by", self.created_by, 200)
        if self.idempotency_key is not None:
            _check_text("idempotency_key", self.idempotency_key, 255, required=True)

    def fingerprint(self) -> JSONObject:
        """What must match for a repeated idempotency key to be the same request."""
        return {
            "kind": self.kind,
            "params": dict(self.params),
            "selector": dict(self.selector),
            "strategy": self.strategy.to_json(),
            "guard": None if self.guard is None else self.guard.to_json(),
            "dry_run": self.dry_run,
        }


def _check_text(field: str, value: str, limit: int, *, required: bool = False) -> None:
    if required and not value:
        raise InvalidSpec(field, "must not be empty")
    if len(value) > limit:
        raise InvalidSpec(field, f"at most {limit} characters")


@dataclass(frozen=True)
class RateKeyPlan:
    rate_key: str
    servers: int  # sub-jobs to act on through this key
    batches: int  # first-step cloud calls (one per batch)
    calls: int  # cloud calls over every step
    budgets: tuple[str, ...]  # the budgets the estimate used, e.g. "50 requests / 60s"
    send_seconds: float  # time to send every call within the budgets


@dataclass(frozen=True)
class PlanSummary:
    targets: int
    skipped: int
    skipped_by_reason: Mapping[str, int]
    rate_keys: tuple[RateKeyPlan, ...]
    waves: tuple[int, ...]  # the first wave sizes (at most 100)
    wave_count: int
    eta_seconds: float
    acting_by_scope: Mapping[str, int]
    fleet_by_scope: Mapping[str, int]
    refused_reason: str | None = None

    def to_json(self) -> JSONObject:
        keys: list[JSONValue] = [
            {
                "rate_key": k.rate_key,
                "servers": k.servers,
                "batches": k.batches,
                "calls": k.calls,
                "budgets": list(k.budgets),
                "send_seconds": k.send_seconds,
            }
            for k in self.rate_keys
        ]
        return {
            "targets": self.targets,
            "skipped": self.skipped,
            "skipped_by_reason": dict(self.skipped_by_reason),
            "rate_keys": keys,
            "waves": list(self.waves),
            "wave_count": self.wave_count,
            "eta_seconds": self.eta_seconds,
            "acting_by_scope": dict(self.acting_by_scope),
            "fleet_by_scope": dict(self.fleet_by_scope),
            "refused_reason": self.refused_reason,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> PlanSummary:
        keys = tuple(
            RateKeyPlan(
                rate_key=str(k.get("rate_key")),
                servers=_int(k.get("servers")),
                batches=_int(k.get("batches")),
                calls=_int(k.get("calls")),
                budgets=tuple(str(b) for b in _list(k.get("budgets"))),
                send_seconds=_float(k.get("send_seconds")),
            )
            for k in _list(raw.get("rate_keys"))
            if isinstance(k, Mapping)
        )
        refused = raw.get("refused_reason")
        return cls(
            targets=_int(raw.get("targets")),
            skipped=_int(raw.get("skipped")),
            skipped_by_reason=_ints(raw.get("skipped_by_reason")),
            rate_keys=keys,
            waves=tuple(_int(w) for w in _list(raw.get("waves"))),
            wave_count=_int(raw.get("wave_count")),
            eta_seconds=_float(raw.get("eta_seconds")),
            acting_by_scope=_ints(raw.get("acting_by_scope")),
            fleet_by_scope=_ints(raw.get("fleet_by_scope")),
            refused_reason=None if refused is None else str(refused),
        )


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float | str) else 0


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float | str) else 0.0


def _ints(value: object) -> dict[str, int]:
    return {str(k): _int(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class OperationRecord:
    id: str
    kind: str
    params: JSONMapping
    selector: JSONMapping
    strategy: Strategy
    guard: BlastRadius | None
    dry_run: bool
    reason: str
    created_by: str
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    planned_at: datetime | None
    refused_reason: str | None
    plan_attempts: int
    targets: int  # sub-jobs to act on (excludes those skipped at planning)
    skipped: int  # sub-jobs skipped at planning
    rate_keys: tuple[str, ...]
    summary: PlanSummary | None
    current_wave: int
    paused: bool
    cancel_requested: bool
    cancelled_by: str | None
    halted_reason: str | None
    finished_at: datetime | None
    approval_rules: ApprovalRules | None = None
    approval: Approval | None = None  # set once planning found that a rule holds

    @property
    def approval_flag(self) -> str | None:
        """None, "pending", or the decision (`jobs.states.OperationFlags.approval`)."""
        if self.approval is None:
            return None
        return "pending" if self.approval.decision is None else self.approval.decision.value

    @property
    def flags(self) -> OperationFlags:
        return OperationFlags(
            planned=self.planned_at is not None,
            refused=self.refused_reason is not None,
            dry_run=self.dry_run,
            paused=self.paused,
            cancel_requested=self.cancel_requested,
            halted=self.halted_reason is not None,
            approval=self.approval_flag,
            listing=self.listing,
        )

    @property
    def listing(self) -> bool:
        """Planned and open to dispatch while its planning goes on (D101): no summary yet."""
        return self.planned_at is not None and self.summary is None and self.finished_at is None


@dataclass(frozen=True)
class OperationView:
    """An operation with its counts and derived state (what the API shows)."""

    operation: OperationRecord
    counts: Mapping[State, int]
    state: OperationState

    @property
    def done(self) -> int:
        return sum(n for s, n in self.counts.items() if s not in _ACTIVE_STATES)


_ACTIVE_STATES = frozenset({State.PENDING, State.DISPATCHING, State.AWAITING})


@dataclass(frozen=True)
class SubJobRecord:
    id: int
    operation_id: str
    seq: int  # plan order among the acted-on targets (waves count in it); skipped rows < 0
    target_id: str
    kind: str
    rate_key: str
    batch_key: str
    payload: JSONMapping
    memo: JSONMapping | None  # the executor's notes (Accepted/Advance memo)
    state: State
    step: int
    attempt: int  # sends at the current step (a throttled send is given back)
    throttles: int
    not_before: datetime
    verify_first: bool
    cloud_job_id: str | None
    request_id: str | None
    accepted_at: datetime | None
    error_code: str | None
    error_message: str | None
    reason: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    call_id: int | None
    created_at: datetime
    updated_at: datetime
    begun: bool = False  # a call of its action was accepted (see `jobs.store.models.BEGUN_SQL`)
    # The cloud's clock as last read before the claim of its current send (None: not known):
    # a record of the action the cloud keeps (an instance action) from then on may be that send.
    sent_after: datetime | None = None
    throttled_since: datetime | None = None  # first throttled answer of the current streak


@dataclass(frozen=True)
class CloudCallRecord:
    id: int
    operation_id: str
    purpose: str  # "submit" or "verify"
    kind: str
    step: int
    rate_key: str
    batch_key: str
    servers: tuple[str, ...]
    worker: str
    started_at: datetime
    finished_at: datetime | None
    cloud_job_id: str | None
    request_id: str | None
    outcome: str | None
    error_code: str | None
    error_message: str | None


@dataclass(frozen=True)
class CallTotal:
    """How many recorded cloud calls share a rate key, purpose and outcome (for `/metrics`)."""

    rate_key: str
    purpose: str
    outcome: str | None  # None: no answer recorded yet
    count: int


@dataclass(frozen=True)
class EventRecord:
    id: int
    operation_id: str
    subjob_id: int | None  # None: an operation-level event
    target_id: str | None
    event: str  # an Event value for sub-jobs, "operation.*" for the operation
    from_state: State | None
    to_state: State | None
    step: int | None
    attempt: int | None
    code: str | None
    message: str | None
    worker: str | None
    call_id: int | None
    at: datetime


@dataclass(frozen=True)
class Batch:
    """Sub-jobs handed to the executor together: one cloud call, one poll or one verification."""

    operation_id: str
    kind: str
    step: int
    rate_key: str
    batch_key: str
    params: JSONMapping
    subjobs: tuple[SubJobRecord, ...]
    call_id: int | None = None
    verify: bool = False

    @property
    def target_ids(self) -> tuple[str, ...]:
        return tuple(s.target_id for s in self.subjobs)

    @property
    def begun(self) -> bool:
        """Its servers' action has begun: a call of it was accepted, or a verification."""
        return self.verify or any(s.begun for s in self.subjobs)


@dataclass(frozen=True)
class ClaimRequest:
    operation_id: str
    rate_key: str
    max_servers: int  # cap for this group (batch size, headroom, in-flight allowance)
    seq_end: int  # only targets of the released waves (seq < seq_end)
    worker: str
    now: datetime
    lease_until: datetime
    params: JSONMapping = field(default_factory=dict)  # the operation's, handed to the executor
    begun_only: bool = False  # only sub-jobs whose action has begun (`jobs.store.claims.begun`)
    # The cloud's clock as last read (`jobs.ports.Executor.cloud_clock`), kept by the sub-jobs
    # claimed to be sent (`SubJobRecord.sent_after`); a verification keeps the earlier one.
    cloud_floor: datetime | None = None


@dataclass(frozen=True)
class ActiveOperation:
    """An operation the dispatcher may claim for, with what it has in flight right now (its
    begun sub-jobs included). `stopped`: paused, cancelled or halted, so only its begun
    sub-jobs may be claimed."""

    operation: OperationRecord
    in_flight: int
    stopped: bool = False
    begun: int = 0  # of `in_flight`, the PENDING sub-jobs whose action has begun


@dataclass(frozen=True)
class Change:
    """One sub-job's transition (or, with `event` None, an AWAITING reschedule) for the store.

    `values` are the columns to set besides state and lease (which the store handles); the store
    applies it as a compare-and-set on `from_state` and writes the event row in the same
    transaction. A lost race (the row moved meanwhile) applies nothing.
    """

    subjob_id: int
    operation_id: str
    target_id: str
    from_state: State
    event: Event | None
    values: tuple[tuple[str, JSONValue | datetime], ...] = ()
    code: str | None = None
    message: str | None = None

    def value(self, name: str) -> JSONValue | datetime:
        return dict(self.values).get(name)


@dataclass(frozen=True)
class Applied:
    """What a store write did: transitions applied and those that lost a race."""

    applied: int
    lost: tuple[int, ...] = ()
    halted: tuple[str, ...] = ()  # operations the error budget stopped in this write
    finished: tuple[str, ...] = ()  # operations that became terminal in this write
