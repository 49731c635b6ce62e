"""Rate limits and injected faults on the Huawei v1 surfaces of the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.simulator.huawei_client import Answer, Huawei, huawei, ids_body
from tests.simulator_fixtures import SimFactory

ACTION = "/v1/{pid}/cloudservers/action"


@pytest.fixture
async def hw(simulator_factory: SimFactory) -> AsyncIterator[Huawei]:
    async with simulator_factory(speed=1e-9, ecs=6, bms=1, openstack=0) as sim, huawei(sim) as c:
        for server in sim.world.visible("ecs"):
            server.status, server.vm_state, server.power_state = "ACTIVE", "active", 1
        yield c


def ecs(hw: Huawei) -> list[str]:
    return hw.sim.servers("ecs")


async def stop(hw: Huawei, ids: list[str]) -> Answer:
    return await hw.call("POST", ACTION, {"os-stop": {"servers": ids_body(ids)}})


async def start(hw: Huawei, ids: list[str]) -> Answer:
    return await hw.call("POST", ACTION, {"os-start": {"servers": ids_body(ids)}})


async def test_a_50_per_minute_request_limit_refuses_the_51st_call(hw: Huawei) -> None:
    hw.sim.set_limit("huawei-ecs:action", 50, 60.0)
    running = ecs(hw)[:1]
    assert [(await start(hw, running)).status for _ in range(50)] == [200] * 50
    refused = await start(hw, running)
    assert (refused.status, refused.code) == (429, "Common.1503")
    assert refused.headers["X-Request-Id"]
    assert len(hw.sim.world.jobs) == 50


async def test_the_ecs_action_limit_counts_servers_not_requests(hw: Huawei) -> None:
    hw.sim.set_limit("huawei-ecs:action", 5, 60.0, "servers")
    ids = ecs(hw)
    assert (await start(hw, ids[:3])).status == 200
    assert (await start(hw, ids[3:6])).code == "Common.1503"
    assert (await start(hw, ids[3:5])).status == 200
    assert hw.sim.ctx.limits.snapshot()["huawei-ecs:action"]["units"] == 5


async def test_error_burst_then_recovery(hw: Huawei) -> None:
    hw.sim.fault(kind="error_burst", match="huawei-ecs:action", count=2, status=503)
    first, second = await stop(hw, ecs(hw)[:1]), await stop(hw, ecs(hw)[:1])
    assert [first.status, second.status] == [503, 503]
    assert first.body["error"]["code"] == "Common.0001"
    assert hw.sim.world.jobs == {}
    assert (await stop(hw, ecs(hw)[:1])).status == 200


async def test_throttle_fault_answers_common_1503_without_acting(hw: Huawei) -> None:
    hw.sim.fault(kind="throttle", match="huawei-ecs:*", count=1)
    answer = await stop(hw, ecs(hw)[:1])
    assert (answer.status, answer.code) == (429, "Common.1503")
    assert hw.sim.world.jobs == {}


async def test_latency_fault_delays_but_answers(hw: Huawei) -> None:
    hw.sim.fault(kind="latency", match="huawei-ecs:jobs", count=1, ms=20)
    answer = await stop(hw, ecs(hw)[:1])
    polled = await hw.call("GET", f"/v1/{{pid}}/jobs/{answer.body['job_id']}")
    assert polled.status == 200
    assert hw.sim.ctx.faults.rules[0].fired == 1


async def test_timeout_fault_hangs_then_drops_without_acting(hw: Huawei) -> None:
    hw.sim.fault(kind="timeout", match="huawei-ecs:action", count=1, seconds=0.05)
    target = hw.sim.world.servers[ecs(hw)[0]]
    with pytest.raises(aiohttp.ClientError):
        await stop(hw, [target.id])
    assert hw.sim.world.jobs == {} and target.task_state is None
    assert hw.sim.requests(rate_key="huawei-ecs:action")[-1].get("dropped") is True


async def test_drop_fault_performs_the_action_before_the_connection_closes(hw: Huawei) -> None:
    hw.sim.fault(kind="drop", match="huawei-ecs:action", count=1)
    target = hw.sim.world.servers[ecs(hw)[0]]
    with pytest.raises(aiohttp.ClientError):
        await stop(hw, [target.id])
    assert len(hw.sim.world.jobs) == 1
    (job,) = hw.sim.world.jobs.values()
    assert [s.server_id for s in job.sub_jobs] == [target.id]
    assert (target.status, target.task_state) == ("ACTIVE", "powering-off")
    entry = hw.sim.requests(rate_key="huawei-ecs:action")[-1]
    assert entry["dropped"] is True and entry["status"] == 200
    again = await stop(hw, [target.id])  # the retry a client would send finds it busy
    assert (again.status, again.code) == (501, "Ecs.0603")


async def test_faults_apply_to_bms_and_token_calls_too(hw: Huawei) -> None:
    hw.sim.fault(kind="error_burst", match="huawei-bms:*", count=1, status=500)
    bms = hw.sim.servers("bms")
    answer = await hw.call(
        "POST", "/v1/{pid}/baremetalservers/action", {"os-start": {"servers": ids_body(bms)}}
    )
    assert (answer.status, answer.code) == (500, "Common.0001")
    hw.sim.fault(kind="error_burst", match="huawei-iam:token", count=1, status=503)
    async with hw.http.post(f"{hw.sim.base_url}/v3/auth/tokens", json={}) as resp:
        assert resp.status == 503
