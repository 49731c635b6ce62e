"""A Nova confirm whose retries run out is reverted, not left in VERIFY_RESIZE: the executor
hands the engine the compensation to run when it gives up (`on_give_up`)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from fleet.service import open_fleet
from jobs.states import OperationState
from tests.integration.test_operations_on_simulator import (
    SimControl,
    actions_on,
    refused_posts,
    resize_under_way,
    sim_settings,
    subjobs,
    wait_terminal,
)


async def test_a_confirm_that_keeps_failing_is_reverted(tmp_path: Path) -> None:
    settings = sim_settings(tmp_path, speed=40.0)
    # one send per step: the first refusal of the confirm is its last
    engine = settings.engine.model_copy(update={"max_attempts": 1})
    async with (
        open_fleet(settings.model_copy(update={"engine": engine})) as fleet,
        aiohttp.ClientSession() as http,
    ):
        assert fleet.simulator_url is not None
        sim = SimControl(http, fleet.simulator_url)
        up, _flavor, op_id = await resize_under_way(fleet, sim, "easystack-sim")
        before = up.flavor
        # the resize is under way: the next action call (the confirm) is refused, retryably
        await sim.fault(
            {"kind": "error_burst", "match": "openstack:action", "status": 503, "count": 1}
        )
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.COMPLETED_WITH_FAILURES
        (row,) = await subjobs(fleet, op_id)
        assert row.error_code == "resize_reverted", row
        log = await sim.requests()
        (refused,) = refused_posts(log, up.id)  # the confirm
        assert refused["status"] == 503 and str(refused["path"]).endswith("/action")
        assert actions_on(log, up.id) == ["resize", "revertResize"]
        world = await sim.servers()
        assert (world[up.id]["status"], world[up.id]["flavor"]) == ("ACTIVE", before)
