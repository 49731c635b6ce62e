"""The REST contract of `/v1/schedules` (see docs/policies.md, "Per-server schedules").

A schedule body is checked here for its shape (strict, unknown keys refused, 422 naming the
field), then by `fleet.policies.periods` for its meaning (time zone, times, weekdays, calendars),
whose `ScheduleError` names the field the same way.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import Field, JsonValue, RootModel

from fleet.api.schemas import _In, _Out, _Query
from fleet.policies.model import NAME_PATTERN

HHMM = r"^\s*\d{1,2}:\d{2}\s*$"


class PeriodIn(_In):
    begintime: str | None = Field(default=None, max_length=8, description="HH:MM, local")
    endtime: str | None = Field(
        default=None, max_length=8, description="HH:MM, local, after begintime"
    )
    weekdays: list[str] = Field(
        default_factory=list, max_length=14, description="mon..sun or ranges mon-fri; [] = all"
    )
    description: str = Field(default="", max_length=1000)


class ScheduleIn(_In):
    """A named schedule: running periods in a time zone, and days with no running period."""

    name: str = Field(pattern=NAME_PATTERN, description="the schedule's id")
    description: str = Field(default="", max_length=1000)
    timezone: str = Field(default="UTC", min_length=1, max_length=64, description="IANA name")
    periods: list[PeriodIn] = Field(min_length=1, max_length=50)
    skip_dates: list[date] = Field(default_factory=list, max_length=1000)
    skip_calendars: list[str] = Field(default_factory=list, max_length=100)

    def raw(self) -> dict[str, object]:
        data: dict[str, object] = self.model_dump(mode="json", exclude_unset=True)
        return data


class SchedulePatchIn(RootModel[dict[str, JsonValue]]):
    """A JSON merge patch (RFC 7396) of a schedule: the keys given replace the stored ones (a list,
    such as `periods`, whole), null removes a key (its default applies). The result is checked as
    a whole `ScheduleIn`."""


class ScheduleSpecOut(_Out):
    name: str
    description: str
    timezone: str
    periods: list[dict[str, JsonValue]]
    skip_dates: list[date]
    skip_calendars: list[str]


class TransitionOut(_Out):
    at: datetime
    local: datetime = Field(description="the same instant in the schedule's time zone")
    state: str = Field(description="running or stopped from then on")
    note: str | None = Field(description="why it moved (daylight saving)")


class ScheduleOut(_Out):
    name: str
    source: str = Field(description="file (edit the file) or api")
    version: int
    spec: ScheduleSpecOut
    created_at: datetime | None
    updated_at: datetime | None
    created_by: str
    updated_by: str
    state_now: str | None = Field(description="running or stopped; null if it no longer works")
    next_transitions: list[TransitionOut]


class ScheduleList(_Out):
    items: list[ScheduleOut]


class SchedulePreviewQuery(_Query):
    n: int = Field(default=2, ge=1, le=20, description="transitions per server")
    servers: int = Field(default=200, ge=0, le=1000, description="how many servers to list")


class ServerScheduleOut(_Out):
    endpoint: str
    server_id: str
    name: str
    status: str
    desired_now: str
    why: str
    action_now: str | None = Field(description="stop or start: what a schedule policy would do")
    next_transitions: list[TransitionOut]


class SchedulePreviewOut(_Out):
    schedule: str
    now: datetime
    state_now: str
    tagged: int = Field(description="servers tagged fleet-schedule=<name> (all are counted)")
    servers: list[ServerScheduleOut]
    truncated: bool
