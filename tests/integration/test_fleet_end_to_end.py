"""fleet as a whole, in one process: embedded simulator, SQLite, drivers, planner, executor, engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

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
