"""Each fault kind on the Nova mounts: what the client sees and whether the cloud acted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.simulator.nova_client import Nova, slow_sim
from tests.simulator_fixtures import Sim, SimFactory


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    async with slow_sim(simulator_factory, ecs=3, bms=1, openstack=3) as running:
        for server in running.world.servers.values():
            server.status, server.vm_state, server.power_state = "ACTIVE", "active", 1
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize(
    ("surface", "envelope"), [("openstack", "serviceUnavailable"), ("huawei", "serviceUnavailable")]
)
async def test_error_burst_refuses_without_acting(
    sim: Sim, http: aiohttp.ClientSession, surface: str, envelope: str
) -> None:
    nova = Nova(sim, http, surface)
    prefix = "openstack" if surface == "openstack" else "huawei-nova"
    sid = sim.servers("openstack" if surface == "openstack" else "ecs")[0]
    sim.fault(kind="error_burst", match=f"{prefix}:action", count=2, status=503)
    first = await nova.action(sid, {"os-stop": None})
    assert first.status == 503 and envelope in first.body
    assert (await nova.action(sid, {"os-stop": None})).status == 503
    assert not sim.world.servers[sid].busy
    assert (await nova.action(sid, {"os-stop": None})).status == 202
    assert sim.world.servers[sid].task_state == "powering-off"


async def test_throttle_fault_per_dialect(sim: Sim, http: aiohttp.ClientSession) -> None:
    sim.fault(kind="throttle", match="*:show", count=0)
    es_reply = await Nova(sim, http, "openstack").call(
        "GET", f"/servers/{sim.servers('openstack')[0]}"
    )
    assert es_reply.status == 429 and int(es_reply.headers["Retry-After"]) >= 1
    assert es_reply.body["overLimit"]["code"] == 429
    hw_reply = await Nova(sim, http, "huawei").call("GET", f"/servers/{sim.servers('ecs')[0]}")
    assert hw_reply.status == 429 and hw_reply.body["error"]["code"] == "Common.1503"
    assert hw_reply.headers["Connection"] == "close"


async def test_drop_acts_then_closes_the_connection(sim: Sim, http: aiohttp.ClientSession) -> None:
    es = Nova(sim, http, "openstack")
    sid = sim.servers("openstack")[0]
    sim.fault(kind="drop", match="openstack:action", count=1)
    with pytest.raises(aiohttp.ClientError):
        await es.action(sid, {"os-stop": None})
    assert sim.world.servers[sid].task_state == "powering-off"
    entry = sim.requests(rate_key="openstack:action")[-1]
    assert entry.get("dropped") is True and entry["action"] == "os-stop"


async def test_timeout_never_answers_and_never_acts(sim: Sim, http: aiohttp.ClientSession) -> None:
    hw = Nova(sim, http, "huawei")
    sid = sim.servers("ecs")[0]
    sim.fault(kind="timeout", match="huawei-nova:action", count=1, seconds=0.05)
    with pytest.raises(aiohttp.ClientError):
        await hw.action(sid, {"os-stop": {}})
    assert not sim.world.servers[sid].busy
    assert (await hw.action(sid, {"os-stop": {}})).status == 202


async def test_latency_delays_but_answers(sim: Sim, http: aiohttp.ClientSession) -> None:
    es = Nova(sim, http, "openstack")
    sim.fault(kind="latency", match="openstack:list", count=1, ms=20)
    reply = await es.call("GET", "/servers")
    assert reply.status == 200 and len(reply.body["servers"]) == 3
    assert sim.ctx.faults.rules[0].fired == 1


@pytest.mark.parametrize("surface", ["huawei", "openstack"])
async def test_job_fail_returns_the_server_with_a_fault(
    sim: Sim, http: aiohttp.ClientSession, surface: str
) -> None:
    nova = Nova(sim, http, surface)
    sid = sim.servers("openstack" if surface == "openstack" else "ecs")[0]
    sim.fault(kind="job_fail", server_ids=[sid], reason="Host is down.")
    assert (await nova.action(sid, {"os-stop": None})).status == 202
    sim.advance(25)
    body = await nova.server(sid)
    assert body["status"] == "ACTIVE" and body["OS-EXT-STS:task_state"] is None
    assert body["fault"]["message"] == "Host is down." and body["fault"]["code"] == 500
    assert (await nova.action(sid, {"os-stop": None})).status == 202
    sim.advance(25)
    recovered = await nova.server(sid)
    assert recovered["status"] == "SHUTOFF" and "fault" not in recovered
