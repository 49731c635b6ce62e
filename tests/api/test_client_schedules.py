"""`fleet schedules list | show | create | update | delete | preview` against a live service in
this process (a bad file is a usage error, exit 2, nothing sent; refusals exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.cli.entry import main
from tests.api.conftest import Api
from tests.api.test_client import fleet

TOML = """
[[schedules]]
name = "office"
timezone = "Europe/Berlin"
[[schedules.periods]]
begintime = "08:00"
endtime = "18:00"
weekdays = ["mon-fri"]
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["schedules", "create"],  # --file is required
        ["schedules", "update", "office"],
        ["schedules", "show"],
        ["schedules", "preview", "office", "--n", "0"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


async def test_create_show_list_update_preview_delete(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(TOML, encoding="utf-8")
    code, out, err = await fleet(api, "schedules", "create", "--file", str(path), role="admin")
    assert code == 0, err
    assert out.startswith("created\nschedule office (api, version 1, Europe/Berlin): "), out
    assert "  period 08:00-18:00 mon-fri\n" in out and out.count("  next: ") == 4

    code, out, err = await fleet(api, "schedules", "list", role="viewer")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["office", "api", "Europe/Berlin"]

    whole = tmp_path / "s.json"
    body = {"name": "office", "periods": [{"begintime": "07:00"}], "skip_dates": ["2026-12-24"]}
    whole.write_text(json.dumps(body), encoding="utf-8")
    code, out, err = await fleet(
        api, "schedules", "update", "office", "--file", str(whole), "--if-match", "1",
        role="admin",
    )  # fmt: skip
    assert code == 0 and "(api, version 2, UTC)" in out and "period 07:00-24:00" in out, err

    code, out, err = await fleet(api, "schedules", "preview", "office", role="viewer")
    assert code == 0 and out.startswith("schedule office: "), err
    assert "0 server(s) tagged fleet-schedule=office" in out

    code, out, err = await fleet(api, "schedules", "delete", "office", role="admin")
    assert code == 0 and out == "schedule office deleted\n", err
    code, _, err = await fleet(api, "schedules", "show", "office", role="viewer")
    assert code == 2 and "404" in err


async def test_refusals_exit_2(api: Api, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "periods": [{"weekdays": ["mon", "xyz"]}]}))
    code, _, err = await fleet(api, "schedules", "create", "--file", str(bad), role="admin")
    assert code == 2 and "422" in err and "periods[0].weekdays[1]" in err, err
    broken = tmp_path / "broken.toml"
    broken.write_text("name = ")
    code, _, err = await fleet(api, "schedules", "create", "--file", str(broken), role="admin")
    assert code == 2 and "--file" in err and "not valid TOML" in err, err
    path = tmp_path / "s.toml"
    path.write_text(TOML, encoding="utf-8")
    code, _, err = await fleet(api, "schedules", "create", "--file", str(path), role="operator")
    assert code == 2 and "403" in err, err


async def test_update_some_keys_with_set_or_patch(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(TOML, encoding="utf-8")
    code, _, err = await fleet(api, "schedules", "create", "--file", str(path), role="admin")
    assert code == 0, err
    code, out, err = await fleet(
        api, "schedules", "update", "office", "--set", "timezone=Asia/Shanghai",
        "--set", 'skip_dates=["2026-12-24"]', "--if-match", "1", role="admin",
    )  # fmt: skip
    assert code == 0, err
    assert "(api, version 2, Asia/Shanghai)" in out and "period 08:00-18:00 mon-fri" in out, out
    assert 'skip_dates: ["2026-12-24"]' in out
    code, out, err = await fleet(
        api, "schedules", "update", "office", "--patch", '{"skip_dates": null}', role="admin"
    )
    assert code == 0 and "version 3" in out and "skip_dates" not in out, err
    code, _, err = await fleet(
        api, "schedules", "update", "office", "--set", "timezone=Mars/Olympus", role="admin"
    )
    assert code == 2 and "422" in err and "timezone" in err, err
    code, _, err = await fleet(api, "schedules", "update", "office", "--patch", "[1]", role="admin")
    assert code == 2 and "--patch" in err and "JSON object" in err, err
    code, _, err = await fleet(
        api, "schedules", "update", "office", "--set", "description=x", "--if-match", "1",
        role="admin",
    )  # fmt: skip
    assert code == 2 and "409" in err, err
