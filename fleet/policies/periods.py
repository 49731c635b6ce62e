"""Per-server schedules (AWS Instance Scheduler's periods and schedules): a named schedule is a
time zone, running periods (begin and end times on weekdays) and skip days; a server tagged
`fleet-schedule=<name>` should be running inside a period and stopped outside.

- A period runs from `begintime` (default 00:00) to `endtime` (default the end of the day) on its
  `weekdays` (default every day). When both times are given the end must be after the begin, as
  Instance Scheduler requires; a night shift is two periods (`begintime = "22:00"` and
  `endtime = "06:00"` on the next days), which meet at midnight without a stop.
- A skip day (`skip_dates`, or a day of a holiday calendar named in `skip_calendars`) has no
  running period: the server stays stopped all that day, in the schedule's time zone.
- The desired state is what the local clock reads. A begin or end the clocks skip (they go
  forward) takes effect at the jump (`02:30` in Berlin on the last Sunday of March: at 03:00
  CEST). In the hour the clocks repeat (they go back) the changes happen in the first pass; the
  second pass keeps the state the first one ended with, so nothing is stopped or started twice.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet.policies.cron import CronError, zone
from fleet.policies.model import NAME_PATTERN, PolicyError, describe
from jobs.types import JSONObject

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # Python's weekday() order
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
HORIZON = timedelta(days=400)  # how far ahead the next transitions are looked for


class ScheduleError(PolicyError):
    """A schedule that cannot work; `field` is its dotted path (e.g. `periods[0].endtime`)."""


class Desired(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeriodSpec(_Strict):
    begintime: str | None = None  # HH:MM, local
    endtime: str | None = None  # HH:MM, local; after begintime
    weekdays: list[str] = Field(default_factory=list)  # mon..sun or ranges mon-fri; [] = all
    description: str = ""


class ScheduleSpec(_Strict):
    """A schedule as written in `[[schedules]]` of a policy file or sent to `/v1/schedules`."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    timezone: str = "UTC"
    periods: list[PeriodSpec] = Field(min_length=1, max_length=50)
    skip_dates: list[date] = Field(default_factory=list)
    skip_calendars: list[str] = Field(default_factory=list)

    def to_json(self) -> JSONObject:
        data: JSONObject = json.loads(self.model_dump_json())
        return data


def parse_schedule_spec(raw: Mapping[str, object], prefix: str = "") -> ScheduleSpec:
    try:
        return ScheduleSpec.model_validate(dict(raw))
    except ValidationError as exc:
        err = describe(exc, prefix)
        raise ScheduleError(err.field, err.message) from None


@dataclass(frozen=True)
class Period:
    begin: time
    end: time | None  # None: the end of the day
    days: frozenset[int]  # 0 = Monday

    def running(self, wall: datetime) -> bool:
        t = wall.time()
        return (
            wall.weekday() in self.days and self.begin <= t and (self.end is None or t < self.end)
        )


def _time(text: str | None, field: str) -> time | None:
    if text is None:
        return None
    found = _TIME.match(text.strip())
    if found is None:
        raise ScheduleError(field, f"{text!r} is not a time HH:MM (00:00 to 23:59)")
    return time(int(found[1]), int(found[2]))


_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _day(text: str, field: str) -> int:
    name = text.strip().lower()
    for i, (short, full) in enumerate(zip(DAYS, _FULL, strict=True)):
        if name in (short, full):
            return i
    raise ScheduleError(field, f"unknown weekday {text!r}; one of {', '.join(DAYS)}")


def _weekdays(items: list[str], field: str) -> frozenset[int]:
    if not items:
        return frozenset(range(7))
    days: set[int] = set()
    for i, item in enumerate(items):
        where = f"{field}[{i}]"
        if "-" in item:
            a, _, b = item.partition("-")
            lo, hi = _day(a, where), _day(b, where)
            if hi < lo:
                raise ScheduleError(where, f"range {item!r} runs backwards (mon..sun order)")
            days.update(range(lo, hi + 1))
        else:
            days.add(_day(item, where))
    return frozenset(days)


def _period(spec: PeriodSpec, field: str) -> Period:
    begin = _time(spec.begintime, f"{field}.begintime")
    end = _time(spec.endtime, f"{field}.endtime")
    if begin is not None and end is not None and end <= begin:
        raise ScheduleError(
            f"{field}.endtime",
            f"{spec.endtime} is not after begintime {spec.begintime}: a period runs within one "
            "day; for one that passes midnight use two periods",
        )
    return Period(begin or time(0), end, _weekdays(spec.weekdays, f"{field}.weekdays"))


@dataclass(frozen=True)
class Transition:
    at: datetime  # UTC
    state: Desired
    note: str | None = None

    def to_json(self, tz: tzinfo) -> JSONObject:
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "local": self.at.astimezone(tz).isoformat(),
            "state": self.state.value,
            "note": self.note,
        }


def _ambiguous(wall: datetime, tz: tzinfo) -> bool:
    return (
        wall.replace(tzinfo=tz, fold=0).utcoffset() != wall.replace(tzinfo=tz, fold=1).utcoffset()
    )


def _gap_instant(wall: datetime, tz: tzinfo) -> datetime:
    """The instant the clocks jump over `wall` (which does not exist that day)."""
    lo = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)  # before the jump
    hi = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)  # after it
    lo, hi = min(lo, hi), max(lo, hi)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0)


@dataclass(frozen=True)
class ServerSchedule:
    """A checked schedule (built only by `compile_schedule`)."""

    spec: ScheduleSpec
    tz: ZoneInfo
    periods: tuple[Period, ...]
    skip: Mapping[date, str]

    @property
    def name(self) -> str:
        return self.spec.name

    def _state_on_wall(self, wall: datetime) -> Desired:
        if wall.date() in self.skip:
            return Desired.STOPPED
        running = any(p.running(wall) for p in self.periods)
        return Desired.RUNNING if running else Desired.STOPPED

    def state_at(self, t: datetime) -> Desired:
        """What a server on this schedule should be at instant `t`."""
        local = t.astimezone(self.tz)
        wall = local.replace(tzinfo=None)
        if local.fold == 1 and _ambiguous(wall, self.tz):
            # the second pass of a repeated hour keeps the state the first pass ended with
            start = wall.replace(second=0, microsecond=0)
            while _ambiguous(start - timedelta(minutes=1), self.tz):
                start -= timedelta(minutes=1)
            repeated = local.replace(fold=0).utcoffset() - local.utcoffset()  # type: ignore[operator]
            wall = start + repeated - timedelta(microseconds=1)
        return self._state_on_wall(wall)

    def why(self, t: datetime) -> str:
        day = t.astimezone(self.tz).date()
        if day in self.skip:
            return f"skip day {day.isoformat()} ({self.skip[day]})"
        return (
            "inside a running period"
            if self.state_at(t) is Desired.RUNNING
            else ("outside the running periods")
        )

    def _edges(self, day: date) -> list[datetime]:
        walls = {datetime.combine(day, time(0))}
        for p in self.periods:
            walls.add(datetime.combine(day, p.begin))
            if p.end is not None:
                walls.add(datetime.combine(day, p.end))
        return sorted(walls)

    def _instant(self, wall: datetime) -> tuple[datetime, str | None]:
        at = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        if at.astimezone(self.tz).replace(tzinfo=None) != wall:
            jump = _gap_instant(wall, self.tz)
            note = f"{wall:%H:%M} does not exist on {wall:%Y-%m-%d} (clocks go forward)"
            return jump, f"{note}: at {jump.astimezone(self.tz):%H:%M %Z}"
        return at, None

    def transitions(self, after: datetime, n: int) -> list[Transition]:
        """The next `n` changes of the desired state strictly after `after` (within ~a year)."""
        out: list[Transition] = []
        state = self.state_at(after)
        day = after.astimezone(self.tz).date()
        end = day + HORIZON
        while day <= end and len(out) < n:
            for wall in self._edges(day):
                at, note = self._instant(wall)
                if at <= after:
                    continue
                now = self.state_at(at)
                if now is not state:
                    out.append(Transition(at, now, note))
                    state = now
                    if len(out) >= n:
                        break
            day += timedelta(days=1)
        return out


def compile_schedule(
    spec: ScheduleSpec, calendars: Mapping[str, frozenset[date]] | None = None
) -> ServerSchedule:
    """Check what needs nothing else; ScheduleError names the field."""
    try:
        tz = zone(spec.timezone)
    except CronError as exc:
        raise ScheduleError("timezone", str(exc)) from None
    periods = tuple(_period(p, f"periods[{i}]") for i, p in enumerate(spec.periods))
    skip: dict[date, str] = {}
    for i, name in enumerate(spec.skip_calendars):
        if name not in (calendars or {}):
            known = ", ".join(sorted(calendars or {})) or "none loaded"
            raise ScheduleError(f"skip_calendars[{i}]", f"unknown calendar {name!r} ({known})")
        skip.update(dict.fromkeys((calendars or {})[name], f"calendar {name}"))
    skip.update(dict.fromkeys(spec.skip_dates, "skip date"))
    return ServerSchedule(spec, tz, periods, skip)
