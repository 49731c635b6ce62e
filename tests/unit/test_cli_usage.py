"""Bad command-line input is a usage error: exit status 2 and a message naming the option.

Exit 1 means "the operation failed" (`fleet run --wait`), so a mistyped flag must never end there.
"""

from __future__ import annotations

import asyncio
import io

import pytest

from fleet.cli import build_parser
from fleet.cli.policy_runner import build_parser as runner_parser
from fleet.cli.remote import remote

BAD_ARGS = [
    (["run", "tag_add", "--id", "a", "--set-tag", "owner"], "--set-tag", "key=value"),
    (["run", "tag_add", "--id", "a", "--set-tag", "=x"], "--set-tag", "key=value"),
    (["run", "stop", "--tag", "env"], "--tag", "key=value"),
    (["run", "stop", "--id", "a", "--exclude-tag", "keep"], "--exclude-tag", "key=value"),
    (["run", "stop", "--id", "a", "--max-errors", "lots"], "--max-errors", "percentage"),
    (["run", "stop", "--id", "a", "--max-errors", "120%"], "--max-errors", "out of range"),
    (["run", "stop", "--id", "a", "--waves", "0,100%"], "--waves", ">= 1"),
    (["run", "stop", "--id", "a", "--waves", ","], "--waves", "1,10%,100%"),
    (["run", "stop", "--id", "a", "--max-in-flight", "0"], "--max-in-flight", "at least 1"),
    (["ops", "list", "--limit", "-5"], "--limit", "at least 1"),
    (["ops", "subjobs", "op", "--limit", "x"], "--limit", "whole number"),
    (["servers", "--tag", "env"], "--tag", "key=value"),
    (["servers", "--limit", "0"], "--limit", "at least 1"),
    (["policies", "preview", "p", "--n", "0"], "--n", "at least 1"),
    (["simulate", "--port", "70000"], "--port", "0-65535"),
    (["simulate", "--speed", "-1"], "--speed", "positive"),
]


@pytest.mark.parametrize(("argv", "option", "why"), BAD_ARGS)
def test_a_bad_option_value_exits_2_naming_the_option(
    argv: list[str], option: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err and why in err


@pytest.mark.parametrize("flag", ["--sweep", "--leader-retry", "--stale-after"])
@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_the_policy_runner_refuses_bad_intervals(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        runner_parser().parse_args([flag, value])
    assert exited.value.code == 2
    assert f"argument {flag}:" in capsys.readouterr().err


def test_good_values_are_sent_as_the_api_expects() -> None:
    args = build_parser().parse_args(
        ["run", "tag_add", "--id", "a", "--set-tag", "owner=", "--set-tag", "team=web=1",
         "--max-errors", "2.5%", "--waves", "1, 10%,100%", "--exclude-tag", ""]
    )  # fmt: skip
    assert args.set_tag == [("owner", ""), ("team", "web=1")]
    assert args.max_errors == "2.5%" and args.waves == [1, "10%", "100%"]
    assert args.exclude_tag == ""


@pytest.mark.parametrize(
    ("url", "env"),
    [("not-a-url", False), ("ftp://host", False), ("http://", True), ("http://h:99999", True)],
)
def test_a_bad_service_url_is_a_usage_error(
    url: str, env: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["ops", "list"] if env else ["ops", "list", "--url", url]
    if env:
        monkeypatch.setenv("FLEET_URL", url)
    args = build_parser().parse_args(argv)
    err = io.StringIO()
    code = asyncio.run(remote(args, io.StringIO(), err))
    assert code == 2
    assert ("FLEET_URL" if env else "--url") in err.getvalue() and repr(url) in err.getvalue()
