"""Fire times across daylight-saving changes, from the one `Schedule` that firing, preview and the
APScheduler wake-ups share (explicit instants, no clock involved)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from fleet.policies.cron import CronError, Schedule, key_time, parse_cron
from fleet.policies.scheduler import SlotTrigger
from tests.policies.fakes import utc


def instants(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    return [s.at for s in schedule.between(start, end, 10_000)]


def local(schedule: Schedule, at: datetime) -> str:
    return at.astimezone(schedule.tz).strftime("%m-%d %H:%M %Z")


# --- Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET ------


def test_berlin_daily_in_the_spring_gap_fires_once_an_hour_later() -> None:
    s = Schedule.of("30 2 * * *", "Europe/Berlin")
    got = s.upcoming(utc(2026, 3, 27), 4)
    assert [local(s, x.at) for x in got] == [
        "03-27 02:30 CET",
        "03-28 02:30 CET",
        "03-29 03:30 CEST",  # 02:30 does not exist that night: once, as much later as the jump
        "03-30 02:30 CEST",
    ]
    assert got[2].note is not None and "does not exist" in got[2].note


def test_berlin_daily_in_the_repeated_hour_fires_once_at_the_first() -> None:
    s = Schedule.of("30 2 * * *", "Europe/Berlin")
    got = s.upcoming(utc(2026, 10, 23), 4)
    assert [local(s, x.at) for x in got] == [
        "10-23 02:30 CEST",
        "10-24 02:30 CEST",
        "10-25 02:30 CEST",  # the first 02:30; the second (CET) has no slot
        "10-26 02:30 CET",
    ]
    assert [x.at for x in got][2] == utc(2026, 10, 25, 0, 30)


def test_berlin_half_hourly_across_fall_back_has_no_double_and_no_backwards_slot() -> None:
    s = Schedule.of("*/30 * * * *", "Europe/Berlin")
    got = instants(s, utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 3, 0))
    assert got == sorted(set(got)), "strictly increasing, no repeats"
    walls = [local(s, at) for at in got]
    assert walls == [
        "10-25 01:30 CEST",
        "10-25 02:00 CEST",
        "10-25 02:30 CEST",
        # 02:00 CET and 02:30 CET (the repeated hour) are not fired again
        "10-25 03:00 CET",
        "10-25 03:30 CET",
        "10-25 04:00 CET",
    ]


def test_berlin_half_hourly_across_spring_forward_loses_only_the_missing_hour() -> None:
    s = Schedule.of("*/30 * * * *", "Europe/Berlin")
    got = instants(s, utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 2, 0))
    # 02:00 and 02:30 do not exist: they land on 03:00 and 03:30, which fire once each
    assert [local(s, at) for at in got] == [
        "03-29 01:30 CET",
        "03-29 03:00 CEST",
        "03-29 03:30 CEST",
        "03-29 04:00 CEST",
    ]


def test_berlin_daily_outside_the_changed_hours_keeps_its_local_time() -> None:
    s = Schedule.of("0 20 * * *", "Europe/Berlin")
    got = s.upcoming(utc(2026, 3, 28), 2) + s.upcoming(utc(2026, 10, 24), 2)
    assert [local(s, x.at) for x in got] == [
        "03-28 20:00 CET",
        "03-29 20:00 CEST",
        "10-24 20:00 CEST",
        "10-25 20:00 CET",
    ]
    assert all(x.note is None for x in got)


# --- Asia/Shanghai: no daylight saving since 1991 ----------------------------------------------


def test_shanghai_is_unmoved_by_the_european_changes() -> None:
    s = Schedule.of("0 20 * * mon-fri", "Asia/Shanghai")
    for start in (utc(2026, 3, 26), utc(2026, 10, 22)):
        got = s.upcoming(start, 4)
        assert {x.at.hour for x in got} == {12}  # 20:00 CST is always 12:00 UTC
        assert all(x.at.weekday() < 5 for x in got)


def test_shanghai_historic_daylight_saving_1991_follows_the_same_rules() -> None:
    # 1991-04-14 02:00 -> 03:00 CDT; 1991-09-15 02:00 CDT -> 01:00 CST
    s = Schedule.of("30 2 * * *", "Asia/Shanghai")
    spring = s.upcoming(utc(1991, 4, 12), 3)
    assert [local(s, x.at) for x in spring] == [
        "04-13 02:30 CST",
        "04-14 03:30 CDT",
        "04-15 02:30 CDT",
    ]
    s = Schedule.of("30 1 * * *", "Asia/Shanghai")
    autumn = s.upcoming(utc(1991, 9, 13), 3)
    assert [local(s, x.at) for x in autumn] == [
        "09-14 01:30 CDT",
        "09-15 01:30 CDT",  # the first of the two 01:30s
        "09-16 01:30 CST",
    ]


# --- syntax ---------------------------------------------------------------------------------------


def test_weekday_numbers_follow_crontab_not_apscheduler() -> None:
    s = Schedule.of("0 9 * * 0", "UTC")  # 0 = Sunday in crontab (APScheduler 3 reads Monday)
    assert {x.at.strftime("%a") for x in s.upcoming(utc(2026, 6, 1), 3)} == {"Sun"}
    s = Schedule.of("0 9 * * 1-5", "UTC")
    assert {x.at.strftime("%a") for x in s.upcoming(utc(2026, 6, 1), 10)} == {
        "Mon",
        "Tue",
        "Wed",
        "Thu",
        "Fri",
    }
    s = Schedule.of("0 9 * * 7", "UTC")
    assert {x.at.strftime("%a") for x in s.upcoming(utc(2026, 6, 1), 2)} == {"Sun"}


def test_six_fields_have_seconds_first_and_macros_work() -> None:
    s = Schedule.of("*/5 * * * * *", "UTC")
    assert [x.at.second for x in s.upcoming(utc(2026, 1, 1, 0, 0, 1), 3)] == [5, 10, 15]
    assert Schedule.of("@daily", "UTC").upcoming(utc(2026, 1, 1, 1), 1)[0].at == utc(2026, 1, 2)


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 20 * *", "expected 5 fields"),
        ("0 25 * * *", "25"),
        ("0 0 1 * mon", "both restricted"),
        ("0 0 31 2 *", "never fires"),
        ("0 0 * * 9", "day of week"),
        ("0 0 * * fri-mon", "backwards"),
    ],
)
def test_bad_cron_is_refused_with_the_reason(cron: str, words: str) -> None:
    with pytest.raises(CronError, match=words):
        Schedule.of(cron, "UTC")


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(CronError, match="time zone"):
        Schedule.of("0 0 * * *", "Mars/Olympus")


def test_slot_at_recognises_only_real_slots_and_keys_are_utc() -> None:
    s = Schedule.of("0 20 * * *", "Asia/Shanghai")
    assert s.slot_at(utc(2026, 5, 1, 12)) is not None
    assert s.slot_at(utc(2026, 5, 1, 12, 1)) is None
    assert key_time(utc(2026, 5, 1, 12)) == "2026-05-01T12:00:00Z"


def test_the_apscheduler_trigger_wakes_at_exactly_the_schedules_slots() -> None:
    s = Schedule.of("*/30 * * * *", "Europe/Berlin")
    trigger = SlotTrigger(s)
    start = utc(2026, 10, 24, 23, 0)
    woke, previous = [], None
    now = start
    for _ in range(8):
        nxt = trigger.get_next_fire_time(previous, now)
        assert nxt is not None
        woke.append(nxt)
        previous, now = nxt, nxt + timedelta(milliseconds=5)
    assert woke == [x.at for x in s.upcoming(start - timedelta(microseconds=1), 8)]
    assert parse_cron("0 0 * * *") is not None
