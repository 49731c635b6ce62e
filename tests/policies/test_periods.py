"""Per-server schedules: the desired state and its transitions, across daylight saving changes
in two zones (Berlin, northern; Sydney, southern), and the errors that name the field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from fleet.policies.files import PolicyFileError, load_policy_files
from fleet.policies.periods import (
    Desired,
    ScheduleError,
    ServerSchedule,
    compile_schedule,
    parse_schedule_spec,
)

RUN, STOP = Desired.RUNNING, Desired.STOPPED


def schedule(
    periods: Sequence[Mapping[str, object]],
    tz: str = "Europe/Berlin",
    calendars: dict[str, frozenset[date]] | None = None,
    **more: object,
) -> ServerSchedule:
    raw: dict[str, object] = {"name": "office", "timezone": tz, "periods": periods, **more}
    return compile_schedule(parse_schedule_spec(raw), calendars)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def changes(s: ServerSchedule, after: datetime, n: int) -> list[tuple[str, str]]:
    return [(t.at.strftime("%Y-%m-%d %H:%M"), t.state.value) for t in s.transitions(after, n)]


def test_office_hours_on_weekdays() -> None:
    s = schedule([{"begintime": "08:00", "endtime": "20:00", "weekdays": ["mon-fri"]}])
    assert s.state_at(utc(2026, 3, 2, 6, 59)) is STOP  # Monday 07:59 CET
    assert s.state_at(utc(2026, 3, 2, 7, 0)) is RUN
    assert s.state_at(utc(2026, 3, 2, 19, 0)) is STOP  # 20:00: the end is not inside
    assert s.state_at(utc(2026, 3, 7, 10, 0)) is STOP  # Saturday
    assert changes(s, utc(2026, 3, 6, 12), 3) == [
        ("2026-03-06 19:00", "stopped"),  # Friday 20:00 CET
        ("2026-03-09 07:00", "running"),  # Monday 08:00
        ("2026-03-09 19:00", "stopped"),
    ]


# --- Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET -----


def test_berlin_begin_in_the_spring_gap_starts_when_the_clocks_jump() -> None:
    s = schedule([{"begintime": "02:30", "endtime": "18:00"}])
    found = s.transitions(utc(2026, 3, 28, 18), 2)
    assert [(t.at, t.state) for t in found] == [
        (utc(2026, 3, 29, 1, 0), RUN),  # 03:00 CEST, the jump
        (utc(2026, 3, 29, 16, 0), STOP),  # 18:00 CEST
    ]
    assert found[0].note and "clocks go forward" in found[0].note
    assert s.state_at(utc(2026, 3, 29, 0, 59)) is STOP  # 01:59 CET
    assert changes(s, utc(2026, 3, 29, 17), 1) == [("2026-03-30 00:30", "running")]  # 02:30 CEST


def test_berlin_end_in_the_repeated_hour_stops_once_at_the_first_pass() -> None:
    s = schedule([{"endtime": "02:30"}])  # runs 00:00-02:30 every day
    assert changes(s, utc(2026, 10, 24, 23), 2) == [
        ("2026-10-25 00:30", "stopped"),  # 02:30 CEST, first pass
        ("2026-10-25 23:00", "running"),  # Monday 00:00 CET; nothing in the second pass
    ]
    assert s.state_at(utc(2026, 10, 25, 1, 0)) is STOP  # 02:00 CET, second pass: stays stopped
    assert s.state_at(utc(2026, 10, 25, 1, 29)) is STOP  # 02:29 CET, second pass
    assert s.state_at(utc(2026, 10, 25, 0, 29)) is RUN  # 02:29 CEST, first pass


def test_berlin_begin_in_the_repeated_hour_starts_once() -> None:
    s = schedule([{"begintime": "02:30", "endtime": "23:00"}])
    assert changes(s, utc(2026, 10, 24, 22), 2) == [
        ("2026-10-25 00:30", "running"),  # 02:30 CEST
        ("2026-10-25 22:00", "stopped"),  # 23:00 CET
    ]
    assert s.state_at(utc(2026, 10, 25, 1, 15)) is RUN  # 02:15 CET, second pass: keeps running


def test_berlin_office_hours_keep_their_local_time_across_both_changes() -> None:
    s = schedule([{"begintime": "08:00", "endtime": "20:00"}])
    assert changes(s, utc(2026, 3, 28, 12), 4) == [
        ("2026-03-28 19:00", "stopped"),  # 20:00 CET
        ("2026-03-29 06:00", "running"),  # 08:00 CEST
        ("2026-03-29 18:00", "stopped"),
        ("2026-03-30 06:00", "running"),
    ]
    assert changes(s, utc(2026, 10, 24, 12), 3)[1:] == [
        ("2026-10-25 07:00", "running"),  # 08:00 CET
        ("2026-10-25 19:00", "stopped"),
    ]


# --- Australia/Sydney: 2026-04-05 03:00 AEDT -> 02:00 AEST; 2026-10-04 02:00 AEST -> 03:00 AEDT


def test_sydney_night_shift_across_the_april_fall_back() -> None:
    night: list[dict[str, object]] = [
        {"begintime": "22:00"},
        {"endtime": "02:30"},
    ]  # 22:00 to 02:30, over midnight
    s = schedule(night, tz="Australia/Sydney")
    assert changes(s, utc(2026, 4, 4, 10), 3) == [
        ("2026-04-04 11:00", "running"),  # Saturday 22:00 AEDT (+11)
        ("2026-04-04 15:30", "stopped"),  # Sunday 02:30 AEDT, first pass
        ("2026-04-05 12:00", "running"),  # Sunday 22:00 AEST (+10)
    ]
    assert s.state_at(utc(2026, 4, 4, 13)) is RUN  # midnight: the two periods meet, no stop
    assert s.state_at(utc(2026, 4, 4, 16, 15)) is STOP  # 02:15 AEST, second pass


def test_sydney_end_in_the_october_spring_gap_stops_when_the_clocks_jump() -> None:
    s = schedule([{"endtime": "02:30"}], tz="Australia/Sydney")
    found = s.transitions(utc(2026, 10, 3, 12), 2)
    assert [(t.at, t.state) for t in found] == [
        (utc(2026, 10, 3, 14), RUN),  # Sunday 00:00 AEST (+10)
        (utc(2026, 10, 3, 16), STOP),  # 02:00 AEST = 03:00 AEDT: 02:30 never comes
    ]
    assert found[1].note and "clocks go forward" in found[1].note


# --- skip days --------------------------------------------------------------------------------


def test_a_holiday_calendar_day_stays_stopped() -> None:
    holidays = {"de-holidays": frozenset({date(2026, 4, 6)})}  # Easter Monday
    s = schedule(
        [{"begintime": "08:00", "endtime": "20:00", "weekdays": ["mon-fri"]}],
        calendars=holidays,
        skip_calendars=["de-holidays"],
        skip_dates=["2026-04-07"],
    )
    assert s.state_at(utc(2026, 4, 6, 10)) is STOP
    assert s.why(utc(2026, 4, 6, 10)) == "skip day 2026-04-06 (calendar de-holidays)"
    assert s.state_at(utc(2026, 4, 7, 10)) is STOP
    assert changes(s, utc(2026, 4, 3, 12), 2) == [
        ("2026-04-03 18:00", "stopped"),
        ("2026-04-08 06:00", "running"),  # Wednesday
    ]


# --- bad input names the field ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field", "says"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown IANA time zone"),
        ({"periods": [{"begintime": "18:00", "endtime": "08:00"}]}, "periods[0].endtime",
         "not after begintime"),
        ({"periods": [{"begintime": "08:00", "endtime": "08:00"}]}, "periods[0].endtime",
         "not after begintime"),
        ({"periods": [{"weekdays": ["mon", "funday"]}]}, "periods[0].weekdays[1]",
         "unknown weekday 'funday'"),
        ({"periods": [{"weekdays": ["fri-mon"]}]}, "periods[0].weekdays[0]", "runs backwards"),
        ({"periods": [{}, {"begintime": "25:00"}]}, "periods[1].begintime", "not a time HH:MM"),
        ({"periods": []}, "periods", "at least 1"),
        ({"skip_calendars": ["nope"]}, "skip_calendars[0]", "unknown calendar 'nope'"),
        ({"name": "Bad Name"}, "name", "pattern"),
        ({"period": []}, "period", "Extra inputs"),
    ],
)  # fmt: skip
def test_bad_schedules_name_the_field(raw: dict[str, object], field: str, says: str) -> None:
    body: dict[str, object] = {"name": "office", "periods": [{}]} | raw
    with pytest.raises(ScheduleError) as err:
        compile_schedule(parse_schedule_spec(body), {})
    assert err.value.field == field
    assert says in err.value.message


# --- in policy files ----------------------------------------------------------------------------


def test_policy_files_hold_schedules_with_calendars(tmp_path: Path) -> None:
    (tmp_path / "calendars").mkdir()
    (tmp_path / "calendars" / "de-holidays.toml").write_text('dates = ["2026-04-06"]\n')
    (tmp_path / "policies.toml").write_text(
        '[[schedules]]\nname = "office"\ntimezone = "Europe/Berlin"\n'
        'skip_calendars = ["de-holidays"]\n'
        '[[schedules.periods]]\nbegintime = "08:00"\nendtime = "18:00"\nweekdays = ["mon-fri"]\n'
        '[[policies]]\nname = "office-stop"\nmode = "schedule"\naction = "stop"\n'
        'cron = "* * * * *"\n'
    )
    loaded = load_policy_files([tmp_path / "policies.toml"])
    (office,) = loaded.schedules
    assert office.name == "office" and office.state_at(utc(2026, 4, 6, 10)) is STOP
    assert [p.spec.mode for p in loaded.policies] == ["schedule"]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[[schedules]]\nname = "x"\n[[schedules.periods]]\nweekdays = ["mo"]\n',
         "schedules[0].periods[0].weekdays[0]"),
        ('[[schedules]]\nname = "x"\ntimezone = "Berlin"\n[[schedules.periods]]\n',
         "schedules[0].timezone"),
        ('[[schedules]]\nname = "x"\n[[schedules.periods]]\n[[schedules]]\nname = "x"\n'
         "[[schedules.periods]]\n", "schedules[1].name"),
        ('[[policies]]\nname = "p"\nmode = "schedule"\naction = "reboot"\ncron = "@daily"\n',
         "policies[0].action"),
    ],
)  # fmt: skip
def test_bad_schedules_in_files_name_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as err:
        load_policy_files([path])
    assert err.value.field == field
    assert str(err.value).startswith(f"{path}: {field}: ")
