"""Policy validation: every mistake is refused with the field named, files included."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from fleet.policies.files import PolicyFileError, load_policy_files, policy_files
from fleet.policies.model import PolicyError, compile_policy, parse_duration, parse_spec

ROOT = Path(__file__).resolve().parents[2]

BASE: dict[str, object] = {
    "name": "nightly",
    "cron": "0 20 * * *",
    "timezone": "Asia/Shanghai",
    "action": "stop",
}


def compiled(**changes: object) -> object:
    return compile_policy(parse_spec({**BASE, **changes}))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"cron": "0 25 * * *"}, "cron"),
        ({"timezone": "Europe/Nowhere"}, "timezone"),
        ({"action": "explode"}, "action"),
        ({"action": None}, "action"),
        ({"params": {"type": "GENTLE"}}, "params.type"),
        ({"targets": {"statuses": ["sleepy"]}}, "targets.statuses[0]"),
        ({"targets": {"colour": "red"}}, "targets.colour"),
        ({"strategy": {"max_in_flight": 0}}, "strategy.max_in_flight"),
        ({"guard": {"max_servers": -1}}, "guard.max_servers"),
        ({"misfire_grace": "soon"}, "misfire_grace"),
        ({"misfire_grace": 0}, "misfire_grace"),
        ({"skip_dates": ["2026-13-01"]}, "skip_dates[0]"),
        ({"skip_calendars": ["cn-holidays"]}, "skip_calendars[0]"),
        ({"mode": "restore", "action": "start"}, "restore_from"),
        ({"mode": "restore", "restore_from": "x"}, "action"),
        ({"restore_from": "x"}, "restore_from"),
        ({"mode": "cleanup", "cleanup": {"expiry_tag": None, "op_tag": None}}, "cleanup"),
        ({"cleanup": {}}, "cleanup"),
        ({"mode": "mark", "action": None}, "mark"),
        ({"mode": "mark", "mark": {"op": "stop", "days": 3}}, "action"),
        ({"mode": "mark", "action": None, "mark": {"op": "zap", "days": 3}}, "mark.op"),
        ({"mode": "mark", "action": None, "mark": {"op": "stop", "days": -1}}, "mark.days"),
        (
            {"mode": "mark", "action": None, "mark": {"op": "stop", "days": 1, "tag": "a.b"}},
            "mark.tag",
        ),
        (
            {"mode": "mark", "action": None, "mark": {"op": "stop", "days": 1, "tag": "k" * 37}},
            "mark.tag",
        ),
        ({"unknown": 1}, "unknown"),
        ({"opt_out_tag": "=x"}, "opt_out_tag"),
    ],
)
def test_a_bad_policy_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(PolicyError) as info:
        compiled(**changes)
    assert info.value.field == field, str(info.value)


def test_delete_needs_allow_delete_a_guard_and_cleanup_mode() -> None:
    cleanup = {"mode": "cleanup", "action": "delete"}
    with pytest.raises(PolicyError) as info:
        compiled(**cleanup)
    assert info.value.field == "allow_delete"
    with pytest.raises(PolicyError) as info:
        compiled(**cleanup, allow_delete=True)
    assert info.value.field == "guard"
    with pytest.raises(PolicyError) as info:
        compiled(action="delete", allow_delete=True, guard={"max_servers": 5})
    assert info.value.field == "mode"
    ok = compile_policy(
        parse_spec({**BASE, **cleanup, "allow_delete": True, "guard": {"max_percent": 5}})
    )
    assert ok.guard is not None and ok.action == "delete"


def test_durations_read_like_people_write_them() -> None:
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration(90) == timedelta(seconds=90)
    assert parse_duration("2d") == timedelta(days=2)
    with pytest.raises(ValueError, match="duration"):
        parse_duration("15 minutes")


def test_spec_round_trips_through_json() -> None:
    spec = parse_spec({**BASE, "misfire_grace": "1h", "skip_dates": ["2026-10-01"]})
    again = parse_spec(spec.to_json())
    assert again == spec
    assert spec.to_json()["misfire_grace"] == 3600.0


def test_the_example_file_loads_and_is_not_picked_up_as_a_real_policy_file() -> None:
    loaded = load_policy_files([ROOT / "config" / "policies.example.toml"])
    names = [p.name for p in loaded.policies]
    assert names == [
        "nightly-stop", "morning-start", "mark-sandbox", "expiry-cleanup",
        "schedules-stop", "schedules-start",
    ]  # fmt: skip
    assert [s.name for s in loaded.schedules] == ["office"]
    assert loaded.policies[1].spec.restore_from == "nightly-stop"
    assert ROOT / "config" / "policies.example.toml" not in policy_files(ROOT / "config")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_file_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    good = _write(
        tmp_path / "policies.toml", '[[policies]]\nname="a"\ncron="0 1 * * *"\naction="stop"\n'
    )
    bad = _write(
        tmp_path / "policies-more.toml",
        '[[policies]]\nname="b"\ncron="0 1 * * *"\naction="stop"\n'
        '[[policies]]\nname="c"\ncron="0 1 * * *"\naction="stop"\ntimezone="Nowhere/X"\n',
    )
    with pytest.raises(PolicyFileError) as info:
        load_policy_files([good, bad])
    assert info.value.path == str(bad)
    assert info.value.field == "policies[1].timezone"
    assert str(bad) in str(info.value)


def test_duplicate_names_and_unpaired_restores_are_refused(tmp_path: Path) -> None:
    one = '[[policies]]\nname="a"\ncron="0 1 * * *"\naction="stop"\n'
    dup = _write(tmp_path / "policies.toml", one + one)
    with pytest.raises(PolicyFileError) as info:
        load_policy_files([dup])
    assert info.value.field == "policies[1].name"
    restore = _write(
        tmp_path / "policies-r.toml",
        '[[policies]]\nname="r"\ncron="0 8 * * *"\naction="start"\nmode="restore"\n'
        'restore_from="missing"\n',
    )
    with pytest.raises(PolicyFileError) as info:
        load_policy_files([restore])
    assert info.value.field == "policies[0].restore_from"


def test_unknown_endpoints_are_refused_when_the_endpoints_are_known(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "policies.toml",
        '[[policies]]\nname="a"\ncron="0 1 * * *"\naction="stop"\n'
        'targets={endpoints=["ecs-prod"]}\n',
    )
    assert load_policy_files([path]).policies[0].targets.endpoints == ("ecs-prod",)
    with pytest.raises(PolicyFileError) as info:
        load_policy_files([path], endpoints={"ecs-sim"})
    assert info.value.field == "policies[0].targets.endpoints"


def test_calendars_are_files_named_by_their_stem(tmp_path: Path) -> None:
    (tmp_path / "calendars").mkdir()
    _write(tmp_path / "calendars" / "cn-holidays.toml", 'dates = [2026-10-01, "2026-10-02"]\n')
    path = _write(
        tmp_path / "policies.toml",
        '[[policies]]\nname="a"\ncron="0 1 * * *"\naction="stop"\n'
        'skip_calendars=["cn-holidays"]\nskip_dates=[2026-12-25]\n',
    )
    policy = load_policy_files([path]).policies[0]
    assert policy.skip == {
        date(2026, 10, 1): "calendar cn-holidays",
        date(2026, 10, 2): "calendar cn-holidays",
        date(2026, 12, 25): "skip date",
    }
    _write(tmp_path / "calendars" / "cn-holidays.toml", 'dates = ["2026-10-40"]\n')
    with pytest.raises(PolicyFileError) as info:
        load_policy_files([path])
    assert info.value.field == "dates[0]"


def test_toml_errors_and_unknown_tables_are_reported(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="not valid TOML"):
        load_policy_files([_write(tmp_path / "policies.toml", "[[policies]\n")])
    with pytest.raises(PolicyFileError) as info:
        load_policy_files([_write(tmp_path / "policies2.toml", "[policy]\nname='a'\n")])
    assert info.value.field == "policy"
