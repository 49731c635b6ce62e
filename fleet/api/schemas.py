"""The REST contract: every request and response body, as pydantic models.

Requests are strict (`extra="forbid"`, no type coercion in bodies) so a typo or a wrong type is a
422 naming the field instead of a silently ignored key. The OpenAPI document is generated from
these models and the routes table, and responses are always built through them, so what the API
sends is what the document says. Meaning beyond shape (is this endpoint configured? is `10%` a
valid error budget?) is checked by `fleet.api.validation` with the engine's own parsers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, WithJsonSchema

from fleet.api.schemas_approvals import ApprovalOut
from fleet.domain import PowerType, ServerStatus
from fleet.drivers.registry import KINDS
from fleet.tokens import NAME_PATTERN, Role
from jobs.states import OperationState, State


def _known_action(value: str) -> str:
    if value not in KINDS:
        raise ValueError(f"unknown action {value!r}; one of {', '.join(KINDS)}")
    return value


ActionName = Annotated[
    str,
    AfterValidator(_known_action),
    WithJsonSchema({"type": "string", "enum": list(KINDS)}),
]
"""An action the dialects declare (`fleet.drivers.registry.KINDS`): adding one to a driver adds
it here and to the OpenAPI document."""

MAX_IDS = 10_000
MAX_TAGS = 50


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- requests ---------------------------------------------------------------------------------


class TargetsIn(_In):
    """Which servers: every given criterion must hold. Give at least one."""

    endpoints: list[str] = Field(default_factory=list, max_length=100)
    ids: list[str] = Field(default_factory=list, max_length=MAX_IDS)
    tags_all: dict[str, str] = Field(default_factory=dict, max_length=MAX_TAGS)
    tags_any: dict[str, list[str]] = Field(default_factory=dict, max_length=MAX_TAGS)
    tags_none: dict[str, list[str]] = Field(default_factory=dict, max_length=MAX_TAGS)
    name: str | None = Field(default=None, min_length=1, max_length=255)
    statuses: list[ServerStatus] = Field(default_factory=list, max_length=20)
    exclude_tag: str | None = Field(
        default="fleet-exclude=true",
        max_length=255,
        description="key=value; servers carrying it are skipped ('excluded'); null: no exclusion",
    )


class ParamsIn(_In):
    type: PowerType | None = Field(default=None, description="SOFT or HARD (stop, reboot)")
    flavor: str | None = Field(default=None, min_length=1, max_length=255)
    live: bool | None = Field(default=None, description="EasyStack live resize")
    tags: dict[str, str] | None = Field(default=None, max_length=MAX_TAGS)
    delete_publicip: bool | None = None
    delete_volume: bool | None = None
    # create
    count: int | None = Field(default=None, ge=1, description="servers per endpoint (create)")
    name: str | None = Field(
        default=None, min_length=1, max_length=255, description="name template: web-{n:03d}"
    )
    image: str | None = Field(default=None, min_length=1, max_length=255)
    network: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Huawei: subnet id; Nova: network id",
    )
    vpc: str | None = Field(default=None, min_length=1, max_length=255, description="Huawei VPC id")
    availability_zone: str | None = Field(default=None, min_length=1, max_length=255)
    key_name: str | None = Field(default=None, min_length=1, max_length=255)
    admin_password: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="a secret reference, env:NAME or file:PATH (never the password)",
    )


class StrategyIn(_In):
    max_in_flight: int | None = Field(default=None, ge=1, le=1_000_000)
    max_errors: int | str | None = Field(
        default=None, description="a count (3) or a percentage of the targets ('10%')"
    )
    waves: list[int | str] = Field(
        default_factory=list, max_length=1000, description="e.g. [1, '10%', '100%']"
    )
    pause_after_wave: bool = False


class GuardIn(_In):
    max_servers: int | None = Field(default=None, ge=0)
    max_percent: float | None = Field(default=None, ge=0, le=100)


class CreateOperationIn(_In):
    action: ActionName
    params: ParamsIn = ParamsIn()
    targets: TargetsIn
    strategy: StrategyIn = StrategyIn()
    guard: GuardIn | None = Field(
        default=None,
        description=(
            "blast radius; may only tighten the targeted endpoints' configured limits (per limit "
            "the smaller applies; absent: the configured limits)"
        ),
    )
    dry_run: bool = False
    reason: str = Field(default="", max_length=1000)


class RetryIn(_In):
    """What retry-failed requeues (no body: the failed sub-jobs only)."""

    include_unknown: bool = Field(
        default=False,
        description=(
            "also requeue the unknown sub-jobs (their call may have acted and the cloud keeps no "
            "record); each is read back from the cloud before anything is sent again"
        ),
    )


class TokenCreateIn(_In):
    name: str = Field(pattern=NAME_PATTERN)
    role: Role


# --- query strings (lax: everything arrives as text) -----------------------------------------


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OperationsQuery(_Query):
    state: OperationState | None = None
    cursor: str | None = Field(default=None, max_length=512)
    limit: int = Field(default=50, ge=1, le=1000)


class SubJobsQuery(_Query):
    state: State | None = None
    cursor: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=100, ge=1, le=1000)


class EventsQuery(_Query):
    after: int | None = Field(default=None, ge=0, description="resume after this event id")


class ServersQuery(_Query):
    endpoint: list[str] = Field(default_factory=list, description="repeatable")
    id: list[str] = Field(default_factory=list, description="repeatable")
    tag: list[str] = Field(default_factory=list, description="key=value, all must match")
    tag_any: list[str] = Field(default_factory=list, description="key=value, any value per key")
    tag_none: list[str] = Field(default_factory=list, description="key or key=value, none")
    name: str | None = Field(default=None, min_length=1, max_length=255)
    status: list[ServerStatus] = Field(default_factory=list)
    cursor: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=100, ge=1, le=1000)


# --- responses --------------------------------------------------------------------------------


class FieldError(_Out):
    field: str
    message: str


class ProblemOut(_Out):
    """RFC 9457 problem details, with the offending fields."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    field: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


class RateKeyPlanOut(_Out):
    rate_key: str
    servers: int
    batches: int
    calls: int
    budgets: list[str]
    send_seconds: float


class PlanOut(_Out):
    targets: int
    skipped: int
    skipped_by_reason: dict[str, int]
    rate_keys: list[RateKeyPlanOut]
    waves: list[int]
    wave_count: int
    eta_seconds: float
    acting_by_scope: dict[str, int]
    fleet_by_scope: dict[str, int]
    refused_reason: str | None


class ProgressOut(_Out):
    total: int = Field(description="sub-jobs (one per resolved server, skipped ones included)")
    done: int = Field(description="sub-jobs in a terminal state")
    active: int
    percent: float


class LinksOut(_Out):
    self: str
    subjobs: str
    events: str


class WaitingOut(_Out):
    """Why the operation's planning waits now: on `endpoint` (null: the whole planning, postponed
    after a failed attempt `until` the next one), since `since`."""

    endpoint: str | None
    reason: str
    since: datetime
    until: datetime | None = None


class OperationOut(_Out):
    id: str
    action: str
    params: dict[str, JsonValue]
    targets: dict[str, JsonValue]
    strategy: dict[str, JsonValue]
    guard: dict[str, JsonValue] | None
    dry_run: bool
    reason: str
    state: OperationState
    counts: dict[str, int] = Field(description="sub-jobs by state (every state listed)")
    progress: ProgressOut
    eta_seconds: float | None = Field(description="estimated seconds left; null: unknown yet")
    current_wave: int
    wave_count: int | None
    paused: bool
    created_by: str
    cancelled_by: str | None
    idempotency_key: str | None
    refused_reason: str | None
    halted_reason: str | None
    created_at: datetime
    updated_at: datetime
    planned_at: datetime | None
    finished_at: datetime | None
    approval: ApprovalOut | None = Field(default=None, description="null: needs no approval")
    waiting: list[WaitingOut] = Field(
        default_factory=list,
        description="while planning (or running while it lists): why the planning waits (an "
        "endpoint's listing waiting for its rate budget, a slow answer or a retry; a postponed "
        "attempt); empty once it goes on",
    )
    links: LinksOut


class OperationPage(_Out):
    items: list[OperationOut]
    next_cursor: str | None


class QuotaOut(_Out):
    endpoint: str
    used: int = Field(description="servers the project has, as the cloud reported at admission")
    limit: int = Field(description="servers the project may have")
    room: int = Field(description="servers the project may still add")
    requested: int = Field(description="servers this create would add on the endpoint")


class DryRunOut(_Out):
    operation: OperationOut
    plan: PlanOut | None = Field(description="null when planning took longer than the wait")
    quota: list[QuotaOut] = Field(
        default_factory=list,
        description="a create: the quota of each endpoint it makes servers on that reports one",
    )


class RetryOut(_Out):
    requeued: int = Field(description="failed (and, when asked, unknown) sub-jobs requeued")
    operation: OperationOut


class SubJobOut(_Out):
    id: int
    seq: int
    target_id: str
    endpoint: str | None
    server_id: str | None
    name: str | None
    state: State
    step: int
    attempt: int
    throttles: int
    rate_key: str
    cloud_job_id: str | None
    request_id: str | None
    error_code: str | None
    error_message: str | None
    reason: str | None
    accepted_at: datetime | None
    updated_at: datetime


class SubJobPage(_Out):
    items: list[SubJobOut]
    next_cursor: str | None


class BudgetOut(_Out):
    limit: int
    period: float
    unit: Literal["requests", "servers"]


class RateKeyOut(_Out):
    rate_key: str
    api_class: str
    budgets: list[BudgetOut]
    used: dict[str, int] = Field(description="units sent in the current window, per unit")
    queued: int
    throttled: int = Field(description="throttling answers seen since start")
    waits: int = Field(description="calls that had to wait for budget since start")
    blocked_seconds: float | None = Field(description="seconds left of a throttling pause")


class EndpointOut(_Out):
    name: str
    provider: str
    flavour: str | None = Field(
        description="the dialect's variant (openstack: `flavour`); null if none"
    )
    simulator: bool
    max_servers: int | None
    max_percent: float | None
    rate_keys: list[RateKeyOut]


class EndpointList(_Out):
    items: list[EndpointOut]


class FlavorOut(_Out):
    id: str = Field(description="what the cloud takes as `flavorRef`")
    name: str


class FlavorList(_Out):
    endpoint: str
    items: list[FlavorOut] = Field(description="a resize may name a flavor by id or by name")


class ServerOut(_Out):
    endpoint: str
    id: str
    name: str
    status: ServerStatus
    raw_status: str
    task_state: str | None
    flavor: str | None
    tags: dict[str, str]
    locked: bool


class ServerPage(_Out):
    items: list[ServerOut]
    next_cursor: str | None


class HealthOut(_Out):
    status: Literal["ok"]


class CredentialOut(_Out):
    """An endpoint's credentials: `ok`, `failed` (with the reason; never a secret), `checking`
    (a check still under way, not counted as a failure) or `unchecked` (the driver cannot tell)."""

    state: Literal["ok", "failed", "checking", "unchecked"]
    reason: str | None = None
    checked_at: datetime | None = None


class ReadyOut(_Out):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]
    credentials: dict[str, CredentialOut] = Field(default_factory=dict)


class TokenOut(_Out):
    name: str
    role: Role
    created_at: datetime
    revoked: bool


class TokenCreated(TokenOut):
    token: str = Field(description="shown this once; only a hash is stored")


class TokenList(_Out):
    items: list[TokenOut]


class WhoAmIOut(_Out):
    name: str = Field(description="the token's name (recorded as `created_by`)")
    role: Role
