"""The CLI's API commands (`fleet run`, `fleet ops`, `fleet endpoints`, `fleet servers`) against a
live service in this process: output, progress, summaries and exit codes."""

from __future__ import annotations

import io
import json

import pytest

from fleet.cli import build_parser
from fleet.cli.client import run_body
from fleet.cli.remote import remote
from tests.api.conftest import Api


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


async def fleet(
    api: Api, *argv: str, role: str = "operator", tty: bool = False
) -> tuple[int, str, str]:
    url = str(api.client.make_url("")).rstrip("/")
    args = build_parser().parse_args([*argv, "--url", url])
    out, err = io.StringIO(), (Tty() if tty else io.StringIO())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLEET_TOKEN", api.tokens[role])
        mp.delenv("FLEET_URL", raising=False)
        code = await remote(args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_run_flags_become_the_request_body() -> None:
    args = build_parser().parse_args(
        [
            "run", "resize", "--endpoint", "ecs-sim", "--id", "a", "--id", "b", "--tag", "env=dev",
            "--exclude-tag", "keep=yes", "--name", "web-*", "--flavor", "s6.large.2",
            "--type", "hard", "--max-in-flight", "5", "--max-errors", "10%",
            "--waves", "1,10%,100%", "--dry-run", "--reason", "bigger",
        ]
    )  # fmt: skip
    assert run_body(args) == {
        "action": "resize",
        "targets": {
            "endpoints": ["ecs-sim"],
            "ids": ["a", "b"],
            "tags_all": {"env": "dev"},
            "name": "web-*",
            "exclude_tag": "keep=yes",
        },
        "params": {"type": "HARD", "flavor": "s6.large.2"},
        "strategy": {"max_in_flight": 5, "max_errors": "10%", "waves": [1, "10%", "100%"]},
        "dry_run": True,
        "reason": "bigger",
    }


async def test_dry_run_prints_the_plan_with_eta(api: Api) -> None:
    code, out, _ = await fleet(
        api, "run", "reboot", "--tag", "role=web", "--waves", "1,100%", "--dry-run"
    )
    assert code == 0
    assert "dry run" in out and "servers to act on" in out
    assert "ETA:" in out and "rate key" in out
    assert any(key in out for key in ("ecs-sim:action", "bms-sim:action", "easystack-sim:action"))


async def test_run_wait_shows_progress_and_a_summary(api: Api) -> None:
    servers = await api.servers("ecs-sim", status="running")
    argv = ["run", "stop", "--endpoint", "ecs-sim", "--wait"]
    for s in servers[:3]:
        argv += ["--id", str(s["id"])]
    code, out, err = await fleet(api, *argv)
    assert code == 0, err
    assert "accepted (stop)" in out
    assert ": succeeded" in out and "succeeded           3" in out
    assert "[" in err and "3/3" in err.splitlines()[-1]


async def test_a_failed_operation_exits_1_and_a_live_bar_redraws(api: Api) -> None:
    servers = await api.servers("bms-sim", status="running")
    ids = [str(s["id"]) for s in servers[:2]]
    async with api.client.session.post(
        f"{api.fleet.simulator_url}/_sim/faults", json={"kind": "job_fail", "server_ids": ids[:1]}
    ) as resp:
        assert resp.status == 201
    argv = ["run", "stop", "--endpoint", "bms-sim", "--id", ids[0], "--id", ids[1], "--wait"]
    code, out, err = await fleet(api, *argv, tty=True)
    assert code == 1
    assert "completed_with_failures" in out and "failed              1" in out
    assert "\r" in err


async def test_ops_commands(api: Api) -> None:
    code, out, _ = await fleet(api, "run", "start", "--endpoint", "bms-sim", "--dry-run", "--json")
    assert code == 0
    op_id = json.loads(out)["operation"]["id"]
    code, out, _ = await fleet(api, "ops", "list", role="viewer")
    assert code == 0 and op_id in out and "planned" in out
    code, out, _ = await fleet(api, "ops", "show", op_id, role="viewer")
    assert code == 0 and "planned" in out
    code, out, _ = await fleet(api, "ops", "subjobs", op_id, "--state", "pending", role="viewer")
    assert code == 0 and "bms-sim/" in out
    code, _, err = await fleet(api, "ops", "cancel", op_id)
    assert code == 2 and "409" in err and "dry run" in err
    code, out, _ = await fleet(api, "endpoints", role="viewer")
    assert code == 0 and "bms-sim:action" in out and "50 requests/60s" in out
    code, out, _ = await fleet(
        api, "servers", "--endpoint", "bms-sim", "--limit", "3", role="viewer"
    )
    assert code == 0 and len(out.strip().splitlines()) == 5
    assert out.splitlines()[-1].startswith("next: --cursor ")


async def test_refusals_and_unreachable_service(api: Api) -> None:
    code, _, err = await fleet(api, "run", "stop", "--endpoint", "nowhere")
    assert code == 2 and "targets.endpoints[0]" in err
    code, _, err = await fleet(api, "run", "stop", "--endpoint", "bms-sim", role="viewer")
    assert code == 2 and "403" in err
    args = build_parser().parse_args(["endpoints", "--url", "http://127.0.0.1:9"])
    code = await remote(args, io.StringIO(), err_buf := io.StringIO())
    assert code == 3 and "cannot reach" in err_buf.getvalue()


async def test_subjobs_show_the_vendor_code_and_message(api: Api) -> None:
    servers = await api.servers("ecs-sim", status="running")
    ids = [str(s["id"]) for s in servers[:2]]
    async with api.client.session.post(
        f"{api.fleet.simulator_url}/_sim/faults",
        json={"kind": "job_fail", "server_ids": ids[:1], "error_code": "Ecs.0001"},
    ) as resp:
        assert resp.status == 201
    code, out, _ = await fleet(
        api, "run", "stop", "--endpoint", "ecs-sim", "--id", ids[0], "--id", ids[1], "--json"
    )
    assert code == 0
    op_id = json.loads(out)["id"]
    await api.wait(op_id)
    page = await api.get(f"/v1/operations/{op_id}/subjobs", params={"state": "failed"})
    items = page.body["items"]
    assert isinstance(items, list) and len(items) == 1
    sub = items[0]
    assert sub["error_code"] == "Ecs.0001" and sub["error_message"]
    code, out, _ = await fleet(api, "ops", "subjobs", op_id, role="viewer")
    assert code == 0
    [line] = [ln for ln in out.splitlines() if f"ecs-sim/{ids[0]}" in ln]
    assert "failed" in line and "Ecs.0001" in line
    assert " ".join(str(sub["error_message"]).split()) in line
    assert out.splitlines()[0].split() == ["target", "name", "state", "code", "message", "reason"]


async def _pages(api: Api, *argv: str) -> list[list[str]]:
    """Every page of a listing, following its `next: --cursor C` lines (data rows only)."""
    pages: list[list[str]] = []
    cursor: list[str] = []
    for _ in range(50):
        code, out, err = await fleet(api, *argv, *cursor, role="viewer")
        assert code == 0, err
        lines = out.splitlines()
        more = lines[-1].startswith("next: --cursor ")
        pages.append(lines[1:-1] if more else lines[1:])
        if not more:
            return pages
        cursor = ["--cursor", lines[-1].split()[-1]]
    raise AssertionError("the listing never ended")


async def test_lists_say_where_the_next_page_starts(api: Api) -> None:
    made = []
    for _ in range(3):
        code, out, _ = await fleet(
            api, "run", "reboot", "--endpoint", "bms-sim", "--dry-run", "--json"
        )
        assert code == 0
        made.append(json.loads(out)["operation"]["id"])
    pages = await _pages(api, "ops", "list", "--limit", "2")
    assert [len(p) for p in pages] == [2, 1]
    assert [row.split()[0] for p in pages for row in p] == made[::-1]

    servers = await api.servers("bms-sim")
    pages = await _pages(api, "servers", "--endpoint", "bms-sim", "--limit", "3")
    listed = [row.split()[1] for p in pages for row in p]
    assert len(pages) > 1 and sorted(listed) == sorted(str(s["id"]) for s in servers)

    await api.wait(made[0])
    every = await api.get(f"/v1/operations/{made[0]}/subjobs", params={"limit": "1000"})
    items = every.body["items"]
    assert isinstance(items, list) and len(items) >= 3
    pages = await _pages(api, "ops", "subjobs", made[0], "--limit", "2")
    assert [row.split()[0] for p in pages for row in p] == [str(i["target_id"]) for i in items]


async def test_flavors_lists_an_endpoints_flavors_by_id_and_name(api: Api) -> None:
    code, out, err = await fleet(api, "flavors", "easystack-sim")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert ["3", "m1.large"] in rows, out
    code, _, err = await fleet(api, "flavors", "nowhere")
    assert code == 2 and "nowhere" in err
