"""The contract of `/v1/reports/savings` and `/v1/drift` (see docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, ConfigDict, Field, field_validator

from fleet.api.schemas import _Out, _Query
from fleet.policies.model import NAME_PATTERN


class SavingsQuery(_Query):
    start: AwareDatetime | None = Field(
        default=None, alias="from", description="start of the window (default: 7 days before `to`)"
    )
    end: AwareDatetime | None = Field(
        default=None, alias="to", description="end of the window, excluded (default: now)"
    )
    group_by: Literal["policy", "endpoint", "flavor", "day"] = "policy"
    tz: str = Field(
        default="UTC", max_length=64, description="IANA time zone of the days (group_by=day)"
    )

    @field_validator("tz")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class SavingsRowOut(_Out):
    key: str = Field(description="the policy, endpoint, flavor or day (or `total`)")
    servers: int = Field(description="distinct servers with stopped time in the window")
    hours: float = Field(description="hours stopped within the window")
    bound_hours: float = Field(
        description="of `hours`, those ended by a status read (an upper bound: the cloud kept no "
        "record of the start)"
    )
    unpriced_hours: float = Field(description="of `hours`, those of flavors without a price")
    cost: float = Field(description="what those hours would have cost running, in `currency`")
    still_stopped: int = Field(description="servers still stopped at the end of the window")


class SavingsOut(_Out):
    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    group_by: str
    timezone: str
    currency: str
    rows: list[SavingsRowOut]
    total: SavingsRowOut
    assumptions: list[str]


class DriftQuery(_Query):
    since: AwareDatetime | None = Field(default=None, description="detected at or after")
    policy: str | None = Field(default=None, pattern=NAME_PATTERN)
    endpoint: str | None = Field(default=None, max_length=100)
    limit: int = Field(default=100, ge=1, le=1000)
    before: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="a drift id from the last page"
    )


class DriftOut(_Out):
    id: int
    endpoint: str
    server_id: str
    kind: Literal["not_reached", "left"]
    desired: str = Field(description="the state the operation asked for")
    observed: str = Field(description="what was found (a status, or the sub-job's end)")
    detail: str
    operation_id: str
    policy: str | None
    fire_id: int | None
    changed_at: datetime | None = Field(description="when it left the state, per the cloud")
    detected_at: datetime
    enforcement: Literal["enforced", "refused", "skipped"] | None = Field(
        description="what the policy's `enforce` did (null: it does not enforce)"
    )
    enforce_operation_id: str | None
    enforce_reason: str | None
    enforced_at: datetime | None


class DriftList(_Out):
    items: list[DriftOut]
    next_cursor: str | None = Field(description="older records exist: pass this as `before`")
