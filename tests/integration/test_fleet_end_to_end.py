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
from jobs.states import OperationState, State

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


DONE = {
    OperationState.SUCCEEDED,
    OperationState.COMPLETED_WITH_FAILURES,
    OperationState.STOPPED,
    OperationState.CANCELLED,
    OperationState.REFUSED,
    OperationState.PLANNED,
}


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
