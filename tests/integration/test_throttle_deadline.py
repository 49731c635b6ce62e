"""Permanent throttling ends within the endpoint's `throttle_deadline_seconds`: the sub-job fails
with the cloud's own throttling code and "throttled for longer than ...", on Huawei (whose 429
names no delay: the wait comes from the key's window) and on EasyStack (`Retry-After`).

In one process against the embedded simulator (real loopback HTTP, SQLite, real drivers and
engine); the simulator's request log is the witness that nothing was performed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from fleet.domain import ServerStatus
from fleet.drivers.settings import BudgetSpec
from fleet.service import Fleet, open_fleet
from jobs.states import OperationState, State
from tests.integration.test_operations_on_simulator import (
    SimControl,
    action_calls,
    performed,
    pick,
    server_of,
    sim_settings,
    start_op,
    subjobs,
    wait_terminal,
)

DEADLINE = 3.0
# endpoint -> (the simulator's rate key of its actions, the cloud's throttling code, budget unit)
CASES = {
    "ecs-sim": ("huawei-ecs:action", "Common.1503", "servers"),
    "bms-sim": ("huawei-bms:action", "Common.1503", "requests"),
    "easystack-sim": ("openstack:action", "overLimit", "requests"),
}


@contextlib.asynccontextmanager
async def throttled_fleet(tmp_path: Path, endpoint: str) -> AsyncIterator[tuple[Fleet, SimControl]]:
    """The demo endpoints with a 3 s throttling deadline on `endpoint`, whose action budget has
    a 2 s window (a throttled key pauses for a quarter of it, jobs/ratelimit.py)."""
    settings = sim_settings(tmp_path)
    unit = CASES[endpoint][2]
    endpoints = [
        e.model_copy(
            update={
                "throttle_deadline_seconds": DEADLINE,
                "budgets": {"action": [BudgetSpec(limit=100, period=2.0, unit=unit)]},
            }
        )
        if e.name == endpoint
        else e
        for e in settings.endpoints
    ]
    settings = settings.model_copy(update={"endpoints": endpoints})
    async with open_fleet(settings) as fleet, aiohttp.ClientSession() as http:
        assert fleet.simulator_url is not None
        yield fleet, SimControl(http, fleet.simulator_url)


@pytest.mark.parametrize("endpoint", sorted(CASES))
async def test_permanent_throttling_fails_within_the_deadline(
    tmp_path: Path, endpoint: str
) -> None:
    rate_key, code, _ = CASES[endpoint]
    async with throttled_fleet(tmp_path, endpoint) as (fleet, sim):
        servers = await pick(fleet, sim, endpoint, ServerStatus.RUNNING, 2)
        await sim.fault({"kind": "throttle", "match": rate_key, "count": 0})
        started = time.monotonic()
        op_id = await start_op(fleet, "stop", endpoint, servers)
        done = await wait_terminal(fleet, op_id, seconds=DEADLINE + 20.0)
        took = time.monotonic() - started

        assert done.state is OperationState.COMPLETED_WITH_FAILURES
        rows = await subjobs(fleet, op_id)
        assert [r.state for r in rows] == [State.FAILED, State.FAILED], rows
        for row in rows:
            assert row.error_message is not None
            assert row.error_message.endswith("(throttled for longer than 3s)"), row
            assert row.error_code == code, row
        assert took < DEADLINE + 10.0, took
        log = await sim.requests()
        for server in servers:
            calls = action_calls(log, server.id)
            assert len(calls) >= 2, calls  # throttled more than once before it gave up
            assert not any(performed(e) for e in calls), calls
        world = await sim.servers()
        assert all(world[server_of(r)]["status"] == "ACTIVE" for r in rows)
