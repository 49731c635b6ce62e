"""retry-failed on the simulator: a resize that failed and was rolled back is retried from its
first step, and ends on the new flavor."""

from __future__ import annotations

from pathlib import Path

from jobs.states import OperationState
from tests.integration.test_operations_on_simulator import (
    actions_on,
    resize_under_way,
    running,
    subjobs,
    wait_terminal,
)


async def test_retry_failed_after_a_reverted_resize_resizes_again(tmp_path: Path) -> None:
    async with running(tmp_path, speed=40.0) as (fleet, sim):
        up, flavor, op_id = await resize_under_way(fleet, sim, "easystack-sim")
        before = up.flavor
        # the resize is under way: the next action on the server (the confirm) fails
        await sim.fault({"kind": "job_fail", "server_ids": [up.id], "error_code": "boom"})
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.COMPLETED_WITH_FAILURES
        (row,) = await subjobs(fleet, op_id)
        assert row.error_code == "resize_reverted", row
        first = ["resize", "confirmResize", "revertResize"]
        assert actions_on(await sim.requests(), up.id) == first
        assert (await sim.servers())[up.id]["flavor"] == before

        assert await fleet.operations.retry_failed(op_id, by="tests") == 1
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.SUCCEEDED, await subjobs(fleet, op_id)
        assert actions_on(await sim.requests(), up.id) == [*first, "resize", "confirmResize"]
        world = await sim.servers()
        assert (world[up.id]["status"], world[up.id]["flavor"]) == ("ACTIVE", flavor)
