"""`fleet policies show | create | update | enable | disable | delete` and `fleet flavors
--endpoint E` against a live service in this process (usage errors exit 2, nothing sent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.cli import build_parser
from fleet.cli.entry import main
from tests.api.conftest import Api
from tests.api.test_api_policies import BODY
from tests.api.test_client import fleet

TOML = """
name = "nightly-stop"
cron = "0 20 * * mon-fri"
timezone = "Europe/Berlin"
action = "stop"
params = { type = "SOFT" }
targets = { endpoints = ["ecs-sim"] }
dry_run_only = true
"""


async def _spec(api: Api, name: str = "nightly-stop") -> dict[str, object]:
    reply = await api.get(f"/v1/policies/{name}")
    assert reply.status == 200, reply.body
    spec = reply.body["spec"]
    assert isinstance(spec, dict)
    return spec | {"version": reply.body["version"]}


def test_update_arguments() -> None:
    args = build_parser().parse_args(
        ["policies", "update", "p", "--set", "params.flavor=s6.large.2", "--set", "enabled=false",
         "--set", "targets.endpoints=[\"ecs-sim\"]", "--set", "description=", "--if-match", "3"]
    )  # fmt: skip
    assert args.set == [
        (("params", "flavor"), "s6.large.2"),
        (("enabled",), False),
        (("targets", "endpoints"), ["ecs-sim"]),
        (("description",), ""),
    ]
    assert args.if_match == 3 and args.file is None and args.patch is None


@pytest.mark.parametrize(
    "argv",
    [
        ["policies", "update", "p"],  # one of --file, --set, --patch
        ["policies", "update", "p", "--file", "x.toml", "--set", "a=1"],
        ["policies", "update", "p", "--set", "novalue"],
        ["policies", "update", "p", "--set", "a..b=1"],
        ["policies", "update", "p", "--set", "a=1", "--if-match", "0"],
        ["policies", "create"],  # --file is required
        ["policies", "show"],
        ["flavors"],
        ["flavors", "ecs-sim", "--endpoint", "bms-sim"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


async def test_create_show_update_enable_disable_delete(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(TOML, encoding="utf-8")
    code, out, err = await fleet(api, "policies", "create", "--file", str(path), role="admin")
    assert code == 0, err
    assert out.startswith("created\npolicy nightly-stop (api, version 1, enabled)\n"), out
    assert '  cron: "0 20 * * mon-fri"' in out.splitlines()

    code, out, err = await fleet(api, "policies", "show", "nightly-stop", role="viewer")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "policy nightly-stop (api, version 1, enabled)", err
    assert lines[1].startswith("next fire: ") and '  targets: {"endpoints": ["ecs-sim"]' in out
    code, out, _ = await fleet(api, "policies", "show", "nightly-stop", "--json", role="viewer")
    assert code == 0 and json.loads(out)["spec"]["timezone"] == "Europe/Berlin"

    code, out, err = await fleet(
        api, "policies", "update", "nightly-stop", "--set", "cron=30 21 * * *",
        "--set", "targets.name=web-*", "--set", "misfire_grace=600", role="admin",
    )  # fmt: skip
    assert code == 0 and out.startswith("updated\npolicy nightly-stop (api, version 2"), err
    spec = await _spec(api)
    assert spec["cron"] == "30 21 * * *" and spec["misfire_grace"] == 600.0
    assert spec["targets"] == {**spec["targets"], "endpoints": ["ecs-sim"], "name": "web-*"}  # type: ignore[dict-item]
    assert spec["timezone"] == "Europe/Berlin" and spec["dry_run_only"] is True

    patch = json.dumps({"description": "nightly", "targets": {"name": None}})
    code, _, err = await fleet(
        api, "policies", "update", "nightly-stop", "--patch", patch, role="admin"
    )
    spec = await _spec(api)
    assert code == 0 and spec["description"] == "nightly", err
    assert "name" not in spec["targets"] and spec["version"] == 3  # type: ignore[operator]

    code, out, err = await fleet(api, "policies", "disable", "nightly-stop", role="admin")
    assert code == 0 and "(api, version 4, disabled)" in out, err
    assert "next fire" not in out and (await _spec(api))["enabled"] is False
    code, out, err = await fleet(api, "policies", "enable", "nightly-stop", role="admin")
    assert code == 0 and "(api, version 5, enabled)" in out, err

    # the whole policy from a file (PUT): keys it leaves out take their defaults again
    whole = tmp_path / "p.json"
    whole.write_text(json.dumps({**BODY, "cron": "0 19 * * *"}), encoding="utf-8")
    code, _, err = await fleet(
        api, "policies", "update", "nightly-stop", "--file", str(whole), "--if-match", "5",
        role="admin",
    )  # fmt: skip
    spec = await _spec(api)
    assert code == 0 and spec["cron"] == "0 19 * * *" and spec["version"] == 6, err
    assert spec["description"] == BODY["description"]

    code, out, err = await fleet(api, "policies", "delete", "nightly-stop", role="admin")
    assert code == 0 and out == "policy nightly-stop deleted (its fires stay as history)\n", err
    assert (await api.get("/v1/policies/nightly-stop")).status == 404


async def test_refusals_name_the_field_and_exit_2(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(TOML, encoding="utf-8")
    assert (await fleet(api, "policies", "create", "--file", str(path), role="admin"))[0] == 0
    code, _, err = await fleet(
        api, "policies", "update", "nightly-stop", "--set", "cron=every night", role="admin"
    )
    assert code == 2 and "422" in err and "cron" in err, err
    code, _, err = await fleet(
        api, "policies", "update", "nightly-stop", "--set", "enabled=false", "--if-match", "7",
        role="admin",
    )  # fmt: skip
    assert code == 2 and "409" in err and "version is 1" in err, err
    code, _, err = await fleet(api, "policies", "disable", "nightly-stop", role="operator")
    assert code == 2 and "403" in err, err
    code, _, err = await fleet(api, "policies", "show", "nope", role="viewer")
    assert code == 2 and "404" in err, err
    code, _, err = await fleet(api, "policies", "create", "--file", str(path), role="admin")
    assert code == 2 and "409" in err, err
    assert (await _spec(api))["version"] == 1


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("missing.toml", None, "cannot read it"),
        ("bad.toml", "name = ", "not valid TOML"),
        ("bad.json", "{", "not valid JSON"),
        ("list.json", "[1]", "expected one policy"),
        ("two.toml", '[[policies]]\nname = "a"\n[[policies]]\nname = "b"\n', "found 2"),
    ],
)
async def test_a_bad_file_is_a_usage_error(
    api: Api, tmp_path: Path, name: str, text: str | None, message: str
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text, encoding="utf-8")
    code, _, err = await fleet(api, "policies", "create", "--file", str(path), role="admin")
    assert code == 2 and f"--file {path}" in err and message in err, err
    assert (await api.get("/v1/policies")).body["items"] == []


async def test_a_config_file_entry_creates_the_policy(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "policies.toml"
    path.write_text("[[policies]]\n" + TOML.strip(), encoding="utf-8")
    code, out, err = await fleet(api, "policies", "create", "--file", str(path), role="admin")
    assert code == 0 and "policy nightly-stop (api, version 1" in out, err


async def test_flavors_takes_the_endpoint_as_an_option_too(api: Api) -> None:
    code, out, err = await fleet(api, "flavors", "--endpoint", "easystack-sim")
    assert code == 0 and ["3", "m1.large"] in [line.split() for line in out.splitlines()], err
    code, same, _ = await fleet(api, "flavors", "easystack-sim", "--endpoint", "easystack-sim")
    assert code == 0 and same == out
