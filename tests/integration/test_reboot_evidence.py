"""A reboot whose send may or may not have reached the cloud is judged by the cloud's record of it
(the server's instance actions), never by other changes to the server: a reboot call that was
held and dropped without being performed, followed by a tag edit, is sent again and performed
once; a call that was performed is never sent twice. Every succeeded sub-job has the cloud's
evidence of its reboot within the operation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fleet.domain import ServerStatus
from jobs.states import OperationState, State
from tests.integration.test_operations_on_simulator import (
    SimControl,
    action_calls,
    performed,
    pick,
    running,
    server_of,
    start_op,
    subjobs,
    wait_terminal,
)

CASES = [
    ("ecs-sim", "huawei-ecs:action", 3),
    ("bms-sim", "huawei-bms:action", 2),
    ("easystack-sim", "openstack:action", 2),
]


async def fired(sim: SimControl) -> bool:
    return any(f["fired"] for f in await sim.faults())


def reboots(log: list[dict[str, object]], server_id: str) -> list[dict[str, object]]:
    """The reboot calls the cloud performed on `server_id` (a Huawei batch names every server)."""
    return [
        e
        for e in action_calls(log, server_id)
        if performed(e) and not e.get("dropped") and e.get("action") == "reboot"
    ]


@pytest.mark.parametrize(("endpoint", "rate_key", "count"), CASES)
async def test_a_dropped_reboot_then_a_tag_edit_is_sent_again_and_performed_once(
    tmp_path: Path, endpoint: str, rate_key: str, count: int
) -> None:
    async with running(tmp_path, speed=20.0, http_timeout=1.5) as (fleet, sim):
        servers = await pick(fleet, sim, endpoint, ServerStatus.RUNNING, count)
        # the call is held past fleet's timeout, then dropped without being performed
        await sim.fault({"kind": "timeout", "match": rate_key, "seconds": 3})
        seq = await sim.last_seq()
        op_id = await start_op(fleet, "reboot", endpoint, servers)
        for _ in range(400):  # the held call reached the cloud
            if await fired(sim):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        for server in servers:  # a person edits the tags meanwhile: the server's stamp moves
            url = f"{sim.url}/_sim/servers/{server.id}"
            async with sim.http.patch(url, json={"tags": {"owner": "ops"}}) as resp:
                assert resp.status == 200, await resp.text()
        done = await wait_terminal(fleet, op_id, seconds=60)
        rows = await subjobs(fleet, op_id)
        log = await sim.requests(since=seq)
        assert done.state is OperationState.SUCCEEDED, rows
        for sj in rows:
            assert sj.state is State.SUCCEEDED
            sent = reboots(log, server_of(sj))
            assert len(sent) == 1, (server_of(sj), sent)  # the evidence, and never twice


async def test_without_instance_actions_a_dropped_reboot_ends_unknown_never_resent(
    tmp_path: Path,
) -> None:
    """An EasyStack cloud that does not serve os-instance-actions: a reboot whose answer was lost
    (the cloud performed it) ends `unknown` with the reason, is not sent again, and the operation
    is `completed_with_failures`; retry-failed with include_unknown sends it again."""
    world = tmp_path / "world.toml"
    world.write_text("seed = 3\ninstance_actions = false\n[generate]\nopenstack = 6\n")
    async with running(tmp_path, world=world) as (fleet, sim):
        servers = await pick(fleet, sim, "easystack-sim", ServerStatus.RUNNING, 2)
        await sim.fault({"kind": "lost_answer", "match": "openstack:action", "status": 504})
        seq = await sim.last_seq()
        op_id = await start_op(fleet, "reboot", "easystack-sim", servers)
        done = await wait_terminal(fleet, op_id, seconds=60)
        rows = {server_of(sj): sj for sj in await subjobs(fleet, op_id)}
        log = await sim.requests(since=seq)
        assert done.state is OperationState.COMPLETED_WITH_FAILURES, rows
        assert done.counts.get(State.UNKNOWN) == 1 and done.counts.get(State.SUCCEEDED) == 1
        lost = next(s for s in servers if any(e.get("lost_answer") for e in reboots(log, s.id)))
        assert rows[lost.id].state is State.UNKNOWN
        assert rows[lost.id].reason == "the call may have acted; the cloud keeps no record"
        assert all(len(reboots(log, s.id)) == 1 for s in servers)  # never sent twice

        assert await fleet.operations.retry_failed(op_id, "tests", include_unknown=True)
        again = await wait_terminal(fleet, op_id, seconds=60)
        assert again.state is OperationState.SUCCEEDED
        assert len(reboots(await sim.requests(since=seq), lost.id)) == 2  # as asked
