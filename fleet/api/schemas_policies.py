"""The REST contract of `/v1/policies` (see docs/policies.md for what every key means).

A policy body is checked twice: here for its shape (strict, unknown keys refused, 422 naming the
field), then by the policy engine for its meaning (cron, time zone, endpoints, modes), whose
`PolicyError` names the field the same way. Answers are the engine's own JSON, through these models.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, JsonValue, RootModel

from fleet.api.schemas import (
    ActionName,
    GuardIn,
    ParamsIn,
    StrategyIn,
    TargetsIn,
    _In,
    _Out,
    _Query,
)
from fleet.domain import EXPIRY_TAG
from fleet.policies.model import NAME_PATTERN

# --- requests ---------------------------------------------------------------------------------


class CleanupIn(_In):
    expiry_tag: str | None = Field(default=EXPIRY_TAG, max_length=255)
    op_tag: str | None = Field(default="fleet-op", max_length=255)


class MarkIn(_In):
    op: str = Field(min_length=1, max_length=64)
    days: int = Field(ge=0, le=3650)
    tag: str = Field(default="fleet-op", min_length=1, max_length=255)


MAX_SECONDS = 10 * 366 * 86400
Duration = (
    Annotated[float, Field(ge=0, le=MAX_SECONDS)]
    | Annotated[str, Field(max_length=64, pattern=r"^\s*(\d{1,6}\s*[smhdSMHD]\s*)+$")]
)


class PolicyIn(_In):
    """A policy: a cron schedule in a time zone plus the operation it creates at each fire."""

    name: str = Field(pattern=NAME_PATTERN, description="the policy's id")
    description: str = Field(default="", max_length=1000)
    enabled: bool = True
    cron: str = Field(min_length=1, max_length=255, description="5 or 6 fields, or @daily etc.")
    timezone: str = Field(default="UTC", min_length=1, max_length=64, description="IANA name")
    mode: Literal["normal", "restore", "cleanup", "mark", "schedule"] = "normal"
    action: ActionName | None = None
    params: ParamsIn = ParamsIn()
    targets: TargetsIn = TargetsIn()
    strategy: StrategyIn = StrategyIn()
    guard: GuardIn | None = None
    skip_dates: list[date] = Field(default_factory=list, max_length=1000)
    skip_calendars: list[str] = Field(default_factory=list, max_length=100)
    opt_out_tag: str | None = Field(default="fleet-opt-out=true", max_length=255)
    snooze_tag: str | None = Field(default="fleet-snooze-until", max_length=255)
    restore_from: str | None = Field(default=None, max_length=100)
    restore_window: Duration = Field(default="7d", description="seconds, or '12h', '7d'")
    cleanup: CleanupIn | None = None
    mark: MarkIn | None = None
    allow_delete: bool = False
    enforce: bool = Field(
        default=False,
        description="stop or start again, once per slot, a server of a fire that drifted",
    )
    dry_run_only: bool = False
    require_approval: bool = Field(
        default=False,
        description="each fire's operation waits for a token's approval before anything is sent",
    )
    misfire_grace: Duration = Field(default="15m", description="seconds, or '90s', '15m', '2h'")

    def raw(self) -> dict[str, object]:
        """What the engine parses: only the keys the caller gave (its defaults apply)."""
        data: dict[str, object] = self.model_dump(mode="json", exclude_unset=True)
        return data


class PolicyPatchIn(RootModel[dict[str, JsonValue]]):
    """A JSON merge patch (RFC 7396) of a policy: the keys given replace the stored ones, an
    object merges key by key (`{"targets": {"name": "web-*"}}` keeps the other targets), null
    removes a key (its default applies). The result is checked as a whole `PolicyIn`."""


class PreviewQuery(_Query):
    n: int = Field(default=20, ge=1, le=500, description="how many fire times")
    servers: int = Field(default=200, ge=0, le=1000, description="how many servers to list")


class FiresQuery(_Query):
    limit: int = Field(default=50, ge=1, le=500)
    before: int | None = Field(default=None, ge=1, description="a fire id from the last page")


class RunQuery(_Query):
    slot: AwareDatetime | None = Field(
        default=None, description="re-run this past fire time (default: the current minute)"
    )


# --- responses --------------------------------------------------------------------------------


class SlotOut(_Out):
    at: datetime
    local: datetime = Field(description="the same instant in the policy's time zone")
    note: str | None = Field(description="why the slot moved (daylight saving)")


class SlotPreviewOut(SlotOut):
    fires: bool
    skipped_reason: str | None


class FireOut(_Out):
    outcome: str = Field(
        description="what came of the fire: its operation's outcome (succeeded, "
        "completed_with_failures, failed, stopped, cancelled, refused, running...), "
        "nothing_matched, refused (admission refused its operation), skipped, failed, firing"
    )
    outcome_reason: str | None
    id: int
    policy_id: str
    scheduled_at: datetime
    trigger: str = Field(description="schedule or manual")
    status: str = Field(description="firing, fired, skipped, refused or failed")
    reason: str | None
    operation_id: str | None
    idempotency_key: str
    dry_run: bool
    targets: int
    details: dict[str, JsonValue]
    worker: str
    by: str
    claimed_at: datetime
    finished_at: datetime | None
    restored_by_fire: int | None


class PolicyOut(_Out):
    id: str
    source: str = Field(description="file (edit the file) or api")
    version: int
    active_since: datetime
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str
    spec: dict[str, JsonValue]
    next_fire: SlotOut | None
    last_fire: FireOut | None


class PolicyList(_Out):
    items: list[PolicyOut]


class FireList(_Out):
    items: list[FireOut]
    next_cursor: str | None = Field(description="older fires exist: pass this as `before`")


class RunOut(_Out):
    created: bool = Field(description="false: this slot had fired already (nothing new)")
    fire: FireOut


class PreviewOut(_Out):
    policy_id: str
    now: datetime
    dry_run_only: bool
    slots: list[SlotPreviewOut]
    targets: dict[str, JsonValue] = Field(description="what a fire now would act on, and skip")
