"""An action the cloud performed but answered with a 5xx (a gateway timing out, or a bad gateway,
in front of a backend that went on; an internal error raised after the work began) is verified on
the cloud, never re-sent: every server gets the action exactly once. The simulator's
`lost_answer` fault performs the call and answers the error instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.domain import Selector, ServerStatus
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

CASES = [
    ("ecs-sim", "huawei-ecs:action", "reboot", 504),
    ("ecs-sim", "huawei-ecs:action", "stop", 500),
    ("ecs-sim", "huawei-ecs:action", "reboot", 502),
    ("easystack-sim", "openstack:action", "reboot", 500),
    ("easystack-sim", "openstack:action", "stop", 504),
]


@pytest.mark.parametrize(("endpoint", "rate_key", "kind", "status"), CASES)
async def test_action_performed_but_answered_5xx_is_never_sent_twice(
    tmp_path: Path, endpoint: str, rate_key: str, kind: str, status: int
) -> None:
    async with running(tmp_path) as (fleet, sim):
        count = 2 if endpoint == "ecs-sim" else 1
        servers = await pick(fleet, sim, endpoint, ServerStatus.RUNNING, count)
        await sim.fault({"kind": "lost_answer", "match": rate_key, "status": status})
        op_id = await start_op(fleet, kind, endpoint, servers)
        done = await wait_terminal(fleet, op_id)
        rows = await subjobs(fleet, op_id)
        assert done.state is OperationState.SUCCEEDED, rows
        assert {s.state for s in rows} == {State.SUCCEEDED}

        (fired,) = await sim.faults()
        assert fired["fired"] == 1  # the answer was lost once
        log = await sim.requests()
        for server in servers:
            sent = action_calls(log, server.id)
            assert len(sent) == 1 and performed(sent[0]), sent  # acted once, never re-sent
            assert sent[0].get("lost_answer") == status
        world = await sim.servers()
        expected = "SHUTOFF" if kind == "stop" else "ACTIVE"
        assert all(world[s.id]["status"] == expected for s in servers)


TAG_CASES = [
    ("ecs-sim", "huawei-ecs:tags", 2),
    ("bms-sim", "huawei-nova:tags", 1),
]


@pytest.mark.parametrize(("endpoint", "rate_key", "count"), TAG_CASES)
async def test_a_tag_call_whose_answer_was_lost_is_read_back_not_sent_again(
    tmp_path: Path, endpoint: str, rate_key: str, count: int
) -> None:
    """Tags can be read back: the lost answer is settled by reading the server, so each server
    gets one tag call, and the sub-job succeeds because the tag is there."""
    async with running(tmp_path) as (fleet, sim):
        servers = await pick(fleet, sim, endpoint, ServerStatus.RUNNING, count)
        await sim.fault({"kind": "lost_answer", "match": rate_key, "status": 504, "count": count})
        op_id = await start_op(fleet, "tag_add", endpoint, servers, {"tags": {"patched": "k1"}})
        done = await wait_terminal(fleet, op_id)
        rows = await subjobs(fleet, op_id)
        assert done.state is OperationState.SUCCEEDED, rows
        log = await sim.requests()
        for server in servers:
            sent = [e for e in log if e["rate_key"] == rate_key and server.id in e["server_ids"]]
            sent = [e for e in sent if e["method"] in ("POST", "PUT")]
            assert len(sent) == 1 and performed(sent[0]), sent  # tagged once, never re-sent
        tagged = {s.id: s async for s in fleet.drivers[endpoint].list_servers(Selector())}
        assert all(tagged[s.id].tags.get("patched") == "k1" for s in servers)
