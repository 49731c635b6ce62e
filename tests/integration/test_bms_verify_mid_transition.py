"""A BMS stop whose answer is lost (`drop`: the cloud acts, then closes the connection) is verified
on the cloud while the servers are still stopping, then followed by status (no cloud job id) to
success: no resend, and no wait for `engine.await_timeout`."""

from __future__ import annotations

from pathlib import Path

from fleet.domain import ServerStatus
from jobs.states import OperationState, State
from tests.integration.test_operations_on_simulator import (
    action_calls,
    performed,
    pick,
    running,
    start_op,
    subjobs,
    wait_terminal,
)

BMS_ACTION = "huawei-bms:action"  # the simulator's rate key of BMS batch start/stop/reboot


async def test_bms_stop_verified_mid_transition_then_succeeds(tmp_path: Path) -> None:
    # At speed 4 a stop (20 simulated seconds, 5 hard) takes 1.25 s or more: the verify read,
    # right after the dropped answer, sees the servers still stopping.
    async with running(tmp_path, speed=4.0) as (fleet, sim):
        servers = await pick(fleet, sim, "bms-sim", ServerStatus.RUNNING, 2)
        await sim.fault({"kind": "drop", "match": BMS_ACTION, "count": 1})
        op_id = await start_op(fleet, "stop", "bms-sim", servers)
        done = await wait_terminal(fleet, op_id, seconds=60.0)
        rows = await subjobs(fleet, op_id)
        assert done.state is OperationState.SUCCEEDED, rows
        assert {s.state for s in rows} == {State.SUCCEEDED}

        (fired,) = await sim.faults()
        assert fired["fired"] == 1, fired
        log = await sim.requests()
        for server in servers:
            sent = action_calls(log, server.id)
            assert len(sent) == 1 and performed(sent[0]), sent  # acted once, never re-sent
            assert sent[0].get("dropped"), sent
            shows = [
                e
                for e in log
                if e["method"] == "GET"
                and str(e["path"]).endswith(f"/baremetalservers/{server.id}")
            ]
            assert len(shows) >= 2, shows  # the verify read, then at least one status poll
            assert {e["rate_key"] for e in shows} == {"huawei-bms:show"}
        assert not [e for e in log if "/jobs/" in str(e["path"])]  # no job id to poll
        world = await sim.servers()
        assert all(world[s.id]["status"] == "SHUTOFF" for s in servers)
