"""Fire times: a cron expression in an IANA time zone -> exact UTC instants, one code path for
firing, misfire handling, preview and the APScheduler wake-ups.

Why not hand the time zone to APScheduler 3.x's `CronTrigger(timezone=...)`: measured here, in the
repeated hour of a fall-back change it returns the same instant forever for `30 2 * * *` and goes
*backwards* for `*/30 * * * *`, and `from_crontab` reads weekday 0 as Monday. So the cron fields
are matched on local wall-clock time (APScheduler's field arithmetic on a zone without daylight
saving: UTC), and the wall time is mapped to an instant here, with two documented rules:

- **Clocks go forward** (a wall time that does not exist that day): the slot fires at the same
  distance after the change, like `datetime(..., fold=0)` (02:30 in Berlin on the last Sunday of
  March fires at 03:30 CEST). A slot that lands on an instant another slot already has fires once.
- **Clocks go back** (a wall time that occurs twice): the slot fires once, at the first occurrence
  (summer time). The second pass of the repeated hour has no slots.

Weekdays follow crontab (0 and 7 = Sunday, or names `mon`..`sun`), converted for APScheduler.
A 6-field expression has seconds first (`*/5 * * * * *`), for accelerated schedules in tests.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab order: 0 = Sunday
_APS_NAMES = {0: "sun", 1: "mon", 2: "tue", 3: "wed", 4: "thu", 5: "fri", 6: "sat"}
_WILD = ("*", "?")
# A cron that matches at most once per second needs at most this many candidates per answer
# (the longest stretch of wall times without a new instant is a repeated hour).
_MAX_STEPS = 200_000


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; the message says why."""


def zone(name: str) -> ZoneInfo:
    """An IANA time zone, or CronError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown IANA time zone {name!r}") from None


def _day_number(token: str) -> int:
    text = token.strip().lower()
    if text in _DAY_NAMES:
        return _DAY_NAMES.index(text)
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text) % 7
    raise CronError(f"day of week: {token!r} is not 0-7 or sun..sat")


def _weekdays(field: str) -> str:
    """A crontab day-of-week field -> APScheduler's names (its numbers start at Monday)."""
    if field in _WILD:
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise CronError(f"day of week: bad step in {part!r}")
        if body in _WILD:
            lo, hi = 0, 6
        elif "-" in body:
            a, b = body.split("-", 1)
            lo, hi = _day_number(a), _day_number(b)
            hi = 7 if b.strip() == "7" else hi
            if hi < lo:
                raise CronError(f"day of week: range {part!r} runs backwards")
        else:
            lo = hi = _day_number(body)
        days.update(d % 7 for d in range(lo, hi + 1, step or 1))
    return ",".join(_APS_NAMES[d] for d in sorted(days))


def parse_cron(expr: str) -> CronTrigger:
    """A crontab expression (5 fields, 6 with seconds first, or @daily...) as a CronTrigger over
    naive wall-clock time (evaluated in UTC, which has no daylight saving)."""
    text = _MACROS.get(expr.strip().lower(), expr.strip())
    fields = text.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise CronError(f"expected 5 fields (minute hour day month weekday) or 6, got {expr!r}")
    second, minute, hour, day, month, weekday = fields
    if day not in _WILD and weekday not in _WILD:
        raise CronError(
            "day of month and day of week are both restricted: classic cron fires when either "
            "matches, APScheduler when both do; restrict only one"
        )
    try:
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day="*" if day == "?" else day,
            month=month,
            day_of_week=_weekdays(weekday),
            timezone=UTC,
        )
    except ValueError as exc:
        raise CronError(f"{expr!r}: {exc}") from None


@dataclass(frozen=True)
class Slot:
    """One fire time: the UTC instant, the cron's local wall time, and a note when a daylight
    saving change moved or merged it."""

    at: datetime  # aware, UTC: the identity of the slot (the idempotency key uses it)
    wall: datetime  # naive local wall time the cron matched
    note: str | None = None

    @property
    def local_date(self) -> date:
        """The calendar day the slot belongs to (skip dates, snooze and expiry compare to it)."""
        return self.wall.date()


def _wall(t: datetime, tz: tzinfo) -> datetime:
    return t.astimezone(tz).replace(tzinfo=None)


def _instant(wall: datetime, tz: tzinfo) -> tuple[datetime, str | None]:
    first = wall.replace(tzinfo=tz, fold=0)
    at = first.astimezone(UTC)
    if _wall(at, tz) != wall:
        moved = at.astimezone(tz)
        note = (
            f"{wall:%H:%M:%S} does not exist on {wall:%Y-%m-%d} (clocks go forward): "
            f"fires at {moved:%H:%M:%S %Z}"
        )
        return at, note
    if wall.replace(tzinfo=tz, fold=1).utcoffset() != first.utcoffset():
        return at, f"{wall:%H:%M:%S} occurs twice (clocks go back): fires once, at the first"
    return at, None


@dataclass(frozen=True)
class Schedule:
    """A policy's fire times (see the module docstring for the daylight-saving rules)."""

    cron: str
    tz: ZoneInfo
    trigger: CronTrigger

    @classmethod
    def of(cls, cron: str, timezone: str) -> Schedule:
        schedule = cls(cron, zone(timezone), parse_cron(cron))
        if schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC), horizon_years=30) is None:
            raise CronError(f"{cron!r} never fires")
        return schedule

    def next_after(self, t: datetime, *, horizon_years: int = 10) -> Slot | None:
        """The first slot strictly after instant `t` (None: none within the horizon)."""
        wall = _wall(t, self.tz)
        end = wall + timedelta(days=366 * horizon_years)
        for _ in range(_MAX_STEPS):
            found = self.trigger.get_next_fire_time(None, wall.replace(tzinfo=UTC))
            if found is None:
                return None
            candidate = found.replace(tzinfo=None)
            if candidate > end:
                return None
            at, note = _instant(candidate, self.tz)
            if at > t:
                return Slot(at, candidate, note)
            wall = candidate + timedelta(seconds=1)
        raise CronError(f"{self.cron!r}: no next fire time found (too dense)")

    def iter_after(self, t: datetime) -> Iterator[Slot]:
        slot = self.next_after(t)
        while slot is not None:
            yield slot
            slot = self.next_after(slot.at)

    def between(self, after: datetime, until: datetime, limit: int) -> list[Slot]:
        """Slots with `after < at <= until`, at most the last `limit` of them."""
        out: deque[Slot] = deque(maxlen=limit)
        for slot in self.iter_after(after):
            if slot.at > until:
                break
            out.append(slot)
        return list(out)

    def upcoming(self, after: datetime, n: int) -> list[Slot]:
        out: list[Slot] = []
        for slot in self.iter_after(after):
            if len(out) >= n:
                break
            out.append(slot)
        return out

    def slot_at(self, t: datetime) -> Slot | None:
        """The slot whose instant is exactly `t`, or None (manual re-runs name a slot)."""
        slot = self.next_after(t - timedelta(microseconds=1))
        return slot if slot is not None and slot.at == t else None


def key_time(at: datetime) -> str:
    """The slot's instant as it appears in idempotency keys: `2026-12-01T12:00:00Z`."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
