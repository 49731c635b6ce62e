"""fleet as a whole, in one process: embedded simulator, SQLite, drivers, planner, executor, engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from fleet.domain import Selector, ServerStatus
from fleet.service import Fleet, open_fleet
from fleet.settings import Settings, load_settings
from jobs.records import NewOperation, OperationView
from jobs.states import FINISHED_OPERATIONS, State

ROOT = Path(__file__).resolve().parents[2]


def demo_settings(tmp_path: Path, db_url: str | None = None, speed: float = 200.0) -> Settings:
    return load_settings(
        [ROOT / "config" / "default.toml", ROOT / "config" / "demo.toml"],
        environ={
            "FLEET_DATABASE__URL": db_url or f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}",
            "FLEET_SIMULATOR__SPEED": str(speed),
            "FLEET_ENGINE__POLL_INTERVAL": "0.2",
            "FLEET_ENGINE__IDLE_INTERVAL": "0.05",
        },
    )


DONE = FINISHED_OPERATIONS


async def wait_terminal(fleet: Fleet, op_id: str, seconds: float = 60.0) -> OperationView:
    async with asyncio.timeout(seconds):
        while True:
            view = await fleet.operations.get(op_id)
            if view.state in DONE:
                return view
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("endpoint", ["ecs-sim", "bms-sim", "easystack-sim"])
async def test_stop_by_tag_reaches_every_matching_server_once(
    tmp_path: Path, endpoint: str
) -> None:
    async with open_fleet(demo_settings(tmp_path)) as fleet:
        view, created = await fleet.operations.create(
            NewOperation(
                kind="stop",
                params={"type": "SOFT"},
                selector={"endpoints": [endpoint], "tags_all": {"env": "dev"}},
                reason="test",
                created_by="tests",
            )
        )
        assert created
        done = await wait_terminal(fleet, view.operation.id)
        counts = done.counts
        assert counts.get(State.FAILED, 0) == 0, await fleet.operations.subjobs(view.operation.id)
        assert counts.get(State.SUCCEEDED, 0) >= 1
        subjobs = (await fleet.operations.subjobs(view.operation.id, limit=1000)).items
        skipped = {s.reason for s in subjobs if s.state is State.SKIPPED}
        assert skipped <= {"excluded", "already stopped"}


async def test_log_lines_about_a_subjob_carry_its_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    import structlog

    from fleet.logging import configure_logging

    configure_logging("json", "debug")
    try:
        async with open_fleet(demo_settings(tmp_path)) as fleet:
            servers = [s async for s in fleet.drivers["ecs-sim"].list_servers(Selector())]
            target = next(s for s in servers if s.status is ServerStatus.RUNNING)
            assert fleet.simulator_url is not None
            async with aiohttp.ClientSession() as http:
                await http.post(
                    f"{fleet.simulator_url}/_sim/faults",
                    json={"kind": "job_fail", "server_ids": [target.id], "error_code": "Ecs.0013"},
                )
            view, _ = await fleet.operations.create(
                NewOperation(
                    kind="stop",
                    selector={"endpoints": ["ecs-sim"], "ids": [target.id]},
                    created_by="tests",
                )
            )
            done = await wait_terminal(fleet, view.operation.id)
            assert done.counts.get(State.FAILED) == 1
    finally:
        structlog.reset_defaults()
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    failed = [x for x in lines if x["event"] == "subjob_failed"]
    assert len(failed) == 1
    assert failed[0]["operation_id"] == view.operation.id
    assert failed[0]["endpoint"] == "ecs-sim"
    assert failed[0]["server_id"] == target.id
    assert isinstance(failed[0]["subjob_id"], int)
    assert failed[0]["code"] == "Ecs.0013"
    http_lines = [x for x in lines if x["event"].startswith("http_call") and x.get("operation_id")]
    assert http_lines, "driver lines inside a call carry the operation id"
    assert all(x["endpoint"] == "ecs-sim" for x in http_lines)


def ecs_settings(tmp_path: Path, *, poll: float, endpoints: str) -> Settings:
    """The embedded simulator at speed 200 with the given endpoint tables."""
    config = tmp_path / "c.toml"
    config.write_text(
        f"[simulator]\nenabled = true\nspeed = 200.0\n[engine]\npoll_interval = {poll}\n{endpoints}"
    )
    return load_settings(
        [ROOT / "config" / "default.toml", config],
        environ={"FLEET_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}"},
    )


async def test_a_dry_run_eta_uses_each_endpoint_action_seconds(tmp_path: Path) -> None:
    """Simulator endpoints take the simulator's own durations (20 s stop / speed 200 = 0.1 s,
    one 0.2 s poll); `action_seconds` of an endpoint overrides them."""
    settings = ecs_settings(
        tmp_path,
        poll=0.2,
        endpoints='[[endpoints]]\nname = "ecs-sim"\nprovider = "huawei-ecs"\nsimulator = true\n'
        '[[endpoints]]\nname = "slow-sim"\nprovider = "huawei-ecs"\nsimulator = true\n'
        "action_seconds = { stop = 45 }\n",
    )
    async with open_fleet(settings) as fleet:
        etas = {}
        for endpoint in ("ecs-sim", "slow-sim"):
            view, _ = await fleet.operations.create(
                NewOperation(
                    kind="stop",
                    selector={"endpoints": [endpoint], "statuses": ["running"]},
                    dry_run=True,
                    created_by="tests",
                )
            )
            done = await wait_terminal(fleet, view.operation.id)
            assert done.operation.summary is not None
            assert done.operation.summary.targets > 0
            etas[endpoint] = done.operation.summary.eta_seconds
    # one ECS call sends them all; then one poll interval (ecs-sim) or 45 s on the grid
    assert etas == {"ecs-sim": pytest.approx(0.2), "slow-sim": pytest.approx(45.0)}


async def test_the_first_poll_waits_for_the_expected_action_time(tmp_path: Path) -> None:
    """A stop expected to take 1 s (`action_seconds`) is first read 1 s after the cloud took it,
    not every 0.05 s poll interval: one job query settles it."""
    settings = ecs_settings(
        tmp_path,
        poll=0.05,
        endpoints='[[endpoints]]\nname = "ecs-sim"\nprovider = "huawei-ecs"\nsimulator = true\n'
        "action_seconds = { stop = 1.0 }\n",
    )
    async with open_fleet(settings) as fleet, aiohttp.ClientSession() as http:
        servers = [s async for s in fleet.drivers["ecs-sim"].list_servers(Selector())]
        target = next(s for s in servers if s.status is ServerStatus.RUNNING)
        view, _ = await fleet.operations.create(
            NewOperation(
                kind="stop", selector={"endpoints": ["ecs-sim"], "ids": [target.id]}, created_by="t"
            )
        )
        done = await wait_terminal(fleet, view.operation.id)
        assert done.counts.get(State.SUCCEEDED) == 1
        async with http.get(f"{fleet.simulator_url}/_sim/requests") as resp:
            log = (await resp.json())["requests"]
    [action] = [e for e in log if e["rate_key"] == "huawei-ecs:action"]
    polls = [e for e in log if e["rate_key"] == "huawei-ecs:jobs"]
    assert polls, "the cloud job was read"
    assert polls[0]["time"] - action["time"] >= 1.0
    assert len(polls) == 1  # settled 0.005 s after the send: the first read finds it done
