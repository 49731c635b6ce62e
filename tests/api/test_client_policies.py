"""`fleet policies list | preview | fires | run` against a live service in this process."""

from __future__ import annotations

import json

from fleet.cli import build_parser
from tests.api.conftest import Api
from tests.api.test_api_policies import BODY
from tests.api.test_client import fleet


async def _create(api: Api) -> None:
    reply = await api.call("POST", "/v1/policies", json=BODY, role="admin")
    assert reply.status == 201, reply.body


def test_policies_arguments() -> None:
    args = build_parser().parse_args(["policies", "preview", "nightly-stop", "--n", "3"])
    assert (args.command, args.policies_command, args.policy_id, args.n) == (
        "policies",
        "preview",
        "nightly-stop",
        3,
    )
    assert build_parser().parse_args(["policies", "run", "x"]).policies_command == "run"


async def test_list_shows_every_policy(api: Api) -> None:
    code, out, err = await fleet(api, "policies", "list", role="viewer")
    assert code == 0 and out == "no policies\n", err
    await _create(api)
    code, out, err = await fleet(api, "policies", "list", role="viewer")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split()[:6] == ["id", "source", "state", "cron", "timezone", "action"]
    assert row.startswith("nightly-stop") and "api" in row and "Europe/Berlin" in row
    assert "stop" in row and "dry-run" in row
    code, out, _ = await fleet(api, "policies", "list", "--json", role="viewer")
    assert code == 0 and json.loads(out)["items"][0]["id"] == "nightly-stop"


async def test_preview_prints_fire_times_and_targets(api: Api) -> None:
    await _create(api)
    code, out, err = await fleet(api, "policies", "preview", "nightly-stop", "--n", "3")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "policy nightly-stop (dry run only)"
    assert lines[1] == "next fire times:"
    assert all(line.strip().endswith("fires") or "skipped" in line for line in lines[2:5])
    assert any(line.startswith("a fire now: ") and "servers to act on" in line for line in lines)
    code, out, _ = await fleet(api, "policies", "preview", "nightly-stop", "--n", "2", "--json")
    assert code == 0 and len(json.loads(out)["slots"]) == 2


async def test_preview_of_a_mark_policy_says_where_each_mark_is_kept(api: Api) -> None:
    mark = {
        "name": "mark-all", "cron": "0 6 * * mon", "mode": "mark",
        "mark": {"op": "delete", "days": 14}, "targets": {"name": "*"},
    }  # fmt: skip
    reply = await api.call("POST", "/v1/policies", json=mark, role="admin")
    assert reply.status == 201, reply.body
    code, out, err = await fleet(api, "policies", "preview", "mark-all", "--n", "1")
    assert code == 0, err
    header = next(line for line in out.splitlines() if line.startswith("endpoint"))
    assert header.split() == ["endpoint", "id", "name", "status", "mark", "kept", "reason"]
    rows = [line.split() for line in out.splitlines()]
    kept = {row[0]: row[5] for row in rows if row[0].endswith("-sim") and row[4] == "act"}
    # the suite's EasyStack serves the tag API (2.26+); without it, "fleet" (tests/api/test_api_marks.py)
    assert kept == {"ecs-sim": "tag", "bms-sim": "tag", "easystack-sim": "tag"}, out


async def test_run_fires_once_per_minute_and_names_the_operation(api: Api) -> None:
    await _create(api)
    code, out, err = await fleet(api, "policies", "run", "nightly-stop")
    assert code == 0, err
    first, detail = out.splitlines()
    assert first.startswith("policy nightly-stop: slot ") and "fired now" in first
    assert detail.strip().startswith("dry-run operation ")
    code, out, err = await fleet(api, "policies", "run", "nightly-stop", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["fire"]["by"] == "operator-t" and data["fire"]["trigger"] == "manual"


async def test_refusals_exit_2(api: Api) -> None:
    code, _, err = await fleet(api, "policies", "run", "nope")
    assert code == 2 and "404" in err and "nope" in err
    await _create(api)
    code, _, err = await fleet(api, "policies", "run", "nightly-stop", role="viewer")
    assert code == 2 and "403" in err


async def test_fires_lists_every_fire_page_by_page(api: Api) -> None:
    await _create(api)
    code, out, _ = await fleet(api, "policies", "fires", "nightly-stop", role="viewer")
    assert code == 0 and out == "no fires\n"
    for slot in ("2026-01-05T19:00:00Z", "2026-01-06T19:00:00Z"):  # 20:00 in Berlin, Mon, Tue
        reply = await api.post("/v1/policies/nightly-stop/run", params={"slot": slot})
        assert reply.status == 200, reply.body
    code, out, err = await fleet(api, "policies", "fires", "nightly-stop", "--limit", "1")
    assert code == 0, err
    header, row, more = out.splitlines()
    assert header.split()[:5] == ["fire", "slot", "trigger", "status", "outcome"]
    assert "2026-01-06T19:00:00" in row and "manual" in row
    assert row.split()[4] in ("planning", "running", "planned"), row  # the dry run's outcome
    assert more.startswith("next: --cursor ")
    cursor = more.split()[-1]
    code, out, err = await fleet(
        api, "policies", "fires", "nightly-stop", "--limit", "1", "--cursor", cursor
    )
    assert code == 0, err
    header, row = out.splitlines()
    assert "2026-01-05T19:00:00" in row
