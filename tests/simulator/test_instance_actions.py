"""Instance actions: every path that performs something on a server leaves Nova's record of it.

Nova action routes (both mounts), Huawei ECS/BMS v1 batch jobs and the `/_sim` control plane all
record; a call whose answer is lost after it acted is recorded, a call held and dropped before
acting is not. Read back through `os-instance-actions` on both Nova mounts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fleet.simulator.nova_instance_actions import stamp
from fleet.simulator.worldgen import WorldSpec, load_spec
from tests.simulator.huawei_client import Huawei, huawei, ids_body
from tests.simulator.nova_client import Nova, slow_sim
from tests.simulator_fixtures import Sim, SimFactory

ECS_ACTION = "/v1/{pid}/cloudservers/action"
BMS_ACTION = "/v1/{pid}/baremetalservers/action"


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    async with slow_sim(simulator_factory, ecs=3, bms=2, openstack=3) as running:
        for server in running.world.servers.values():
            server.status, server.vm_state, server.power_state = "ACTIVE", "active", 1
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def hw(sim: Sim) -> AsyncIterator[Huawei]:
    async with huawei(sim) as client:
        yield client


async def actions(nova: Nova, server_id: str, version: str = "2.58") -> list[dict[str, Any]]:
    reply = await nova.call("GET", f"/servers/{server_id}/os-instance-actions", version=version)
    assert reply.status == 200, reply.body
    return list(reply.body["instanceActions"])


async def one(nova: Nova, server_id: str, request_id: str, version: str = "2.58") -> Any:
    path = f"/servers/{server_id}/os-instance-actions/{request_id}"
    return await nova.call("GET", path, version=version)


@pytest.mark.parametrize(("surface", "kind"), [("huawei", "ecs"), ("openstack", "openstack")])
async def test_a_nova_action_is_recorded_with_its_request_id_and_events(
    sim: Sim, http: aiohttp.ClientSession, surface: str, kind: str
) -> None:
    nova = Nova(sim, http, surface)
    sid = sim.servers(kind)[0]
    sent = sim.world.clock.now()
    reply = await nova.action(sid, {"os-stop": {}})
    assert reply.status == 202
    request_id = reply.headers["X-Openstack-Request-Id"]
    assert request_id.startswith("req-")
    [listed] = await actions(nova, sid)
    assert listed["action"] == "stop" and listed["request_id"] == request_id
    assert listed["instance_uuid"] == sid and listed["message"] is None
    assert listed["project_id"] == sim.world.servers[sid].project_id and listed["user_id"]
    assert listed["start_time"] >= str(stamp(sent))
    assert "events" not in listed and "updated_at" in listed
    shown = await one(nova, sid, request_id)
    [event] = shown.body["instanceAction"]["events"]
    assert (event["event"], event["result"], event["finish_time"]) == (
        "compute_stop_instance",
        None,
        None,
    )
    sim.advance(60)
    [event] = (await one(nova, sid, request_id)).body["instanceAction"]["events"]
    assert event["result"] == "Success" and event["finish_time"] >= event["start_time"]


async def test_updated_at_and_event_hosts_follow_the_microversion(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    es = Nova(sim, http, "openstack")
    sid = sim.servers("openstack")[0]
    rid = (await es.action(sid, {"reboot": {"type": "SOFT"}})).headers["X-Openstack-Request-Id"]
    assert "updated_at" not in (await actions(es, sid, "2.57"))[0]
    old = (await one(es, sid, rid, "2.61")).body["instanceAction"]["events"][0]
    new = (await one(es, sid, rid, "2.84")).body["instanceAction"]["events"][0]
    assert "hostId" not in old and "details" not in old
    assert new["host"] and new["hostId"] and new["details"] is None


async def test_huawei_v1_batch_jobs_leave_instance_actions_on_the_nova_surface(
    sim: Sim, http: aiohttp.ClientSession, hw: Huawei
) -> None:
    nova = Nova(sim, http, "huawei")
    ecs_ids, bms_id = sim.servers("ecs")[:2], sim.servers("bms")[0]
    stopped = await hw.call("POST", ECS_ACTION, {"os-stop": {"servers": ids_body(ecs_ids)}})
    rebooted = await hw.call(
        "POST", BMS_ACTION, {"reboot": {"type": "SOFT", "servers": ids_body([bms_id])}}
    )
    assert stopped.status == rebooted.status == 200
    for sid in ecs_ids:
        [record] = await actions(nova, sid)
        assert (record["action"], record["request_id"]) == (
            "stop",
            "req-" + stopped.headers["X-Request-Id"],
        )
    [record] = await actions(nova, bms_id)
    assert (record["action"], record["request_id"]) == (
        "reboot",
        "req-" + rebooted.headers["X-Request-Id"],
    )


async def test_a_refused_precondition_in_a_job_is_not_an_action(
    sim: Sim, http: aiohttp.ClientSession, hw: Huawei
) -> None:
    sid = sim.servers("ecs")[0]
    answer = await hw.call("POST", ECS_ACTION, {"os-start": {"servers": ids_body([sid])}})
    assert answer.status == 200  # the job runs, its sub-job fails: the server was never touched
    assert await actions(Nova(sim, http, "huawei"), sid) == []


async def test_a_failed_action_ends_in_error(sim: Sim, http: aiohttp.ClientSession) -> None:
    nova = Nova(sim, http, "huawei")
    sid = sim.servers("ecs")[0]
    sim.fault(kind="job_fail", server_ids=[sid], reason="host down")
    rid = (await nova.action(sid, {"reboot": {"type": "HARD"}})).headers["X-Openstack-Request-Id"]
    sim.advance(60)
    record = (await one(nova, sid, rid)).body["instanceAction"]
    assert record["message"] == "Error"
    assert (record["events"][0]["result"], record["events"][0]["traceback"]) == (
        "Error",
        "host down",
    )


async def test_console_changes_are_actions_tag_edits_are_not(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    nova = Nova(sim, http, "huawei")
    sid = sim.servers("ecs")[0]
    url = f"{sim.base_url}/_sim/servers/{sid}"
    async with http.patch(url, json={"tags": {"owner": "ops"}}) as resp:
        assert resp.status == 200
    assert await actions(nova, sid) == []
    async with http.patch(url, json={"status": "SHUTOFF", "locked": True}) as resp:
        assert resp.status == 200
        request_id = "req-" + resp.headers["X-Request-Id"]
    records = await actions(nova, sid)
    assert [(r["action"], r["request_id"]) for r in records] == [
        ("lock", request_id),
        ("stop", request_id),
    ]
    assert (await one(nova, sid, request_id)).status == 200
    tagged = await nova.call("PUT", f"/servers/{sid}/tags/extra")
    assert tagged.status == 201
    assert len(await actions(nova, sid)) == 2


async def test_lost_answer_is_recorded_timeout_is_not(
    sim: Sim, http: aiohttp.ClientSession, hw: Huawei
) -> None:
    nova, es = Nova(sim, http, "huawei"), Nova(sim, http, "openstack")
    ecs_id, es_id = sim.servers("ecs")[0], sim.servers("openstack")[0]
    sim.fault(kind="timeout", match="openstack:action", count=1, seconds=0.05)
    sim.fault(kind="timeout", match="huawei-ecs:action", count=1, seconds=0.05)
    with pytest.raises(aiohttp.ClientError):
        await es.action(es_id, {"reboot": {"type": "SOFT"}})
    with pytest.raises(aiohttp.ClientError):
        await hw.call("POST", ECS_ACTION, {"reboot": {"type": "SOFT", "servers": [{"id": ecs_id}]}})
    assert await actions(es, es_id) == [] and await actions(nova, ecs_id) == []
    sim.fault(kind="lost_answer", match="openstack:action", count=1)
    sim.fault(kind="lost_answer", match="huawei-ecs:action", count=1)
    lost = await es.action(es_id, {"reboot": {"type": "SOFT"}})
    lost_v1 = await hw.call(
        "POST", ECS_ACTION, {"reboot": {"type": "SOFT", "servers": [{"id": ecs_id}]}}
    )
    assert lost.status == lost_v1.status == 504
    [record] = await actions(es, es_id)
    assert (record["action"], record["request_id"]) == (
        "reboot",
        lost.headers["X-Openstack-Request-Id"],
    )
    [record] = await actions(nova, ecs_id)
    assert record["request_id"] == "req-" + lost_v1.headers["X-Request-Id"]


@pytest.mark.parametrize(("surface", "kind"), [("huawei", "ecs"), ("openstack", "openstack")])
async def test_unknown_server_and_request_are_404_in_the_surface_shape(
    sim: Sim, http: aiohttp.ClientSession, surface: str, kind: str
) -> None:
    nova = Nova(sim, http, surface)
    missing = "00000000-0000-4000-8000-000000000000"
    reply = await nova.call("GET", f"/servers/{missing}/os-instance-actions")
    assert reply.status == 404
    assert reply.body["itemNotFound"]["message"] == f"Instance {missing} could not be found."
    sid = sim.servers(kind)[0]
    reply = await one(nova, sid, "req-nothing")
    assert reply.status == 404
    assert "req-nothing" in reply.body["itemNotFound"]["message"]
    other = sim.servers("openstack" if surface == "huawei" else "ecs")[0]
    assert (await nova.call("GET", f"/servers/{other}/os-instance-actions")).status == 404


async def test_paging_and_changes_since_from_2_58(sim: Sim, http: aiohttp.ClientSession) -> None:
    es = Nova(sim, http, "openstack")
    sid = sim.servers("openstack")[0]
    ids = []
    for body in ({"lock": None}, {"unlock": None}, {"lock": None}):
        ids.append((await es.action(sid, body)).headers["X-Openstack-Request-Id"])
        sim.advance(5)
    path = f"/servers/{sid}/os-instance-actions"
    first = await es.call("GET", path, params={"limit": "2"}, version="2.58")
    assert [r["request_id"] for r in first.body["instanceActions"]] == ids[::-1][:2]
    assert "marker=" in first.body["links"][0]["href"]
    rest = await es.call("GET", path, params={"limit": "2", "marker": ids[1]}, version="2.58")
    assert [r["request_id"] for r in rest.body["instanceActions"]] == [ids[0]]
    assert "links" not in rest.body
    since = (await one(es, sid, ids[1])).body["instanceAction"]["start_time"]
    recent = await es.call("GET", path, params={"changes-since": since}, version="2.58")
    assert [r["request_id"] for r in recent.body["instanceActions"]] == ids[::-1][:2]
    old = await es.call("GET", path, params={"limit": "1"}, version="2.57")
    assert len(old.body["instanceActions"]) == 3  # paging does not exist before 2.58
    bad = await es.call("GET", path, params={"marker": "req-x"}, version="2.58")
    assert bad.status == 400 and "badRequest" in bad.body


async def test_deleted_servers_keep_their_history_from_2_21(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    nova, es = Nova(sim, http, "huawei"), Nova(sim, http, "openstack")
    ecs_id, es_id = sim.servers("ecs")[0], sim.servers("openstack")[0]
    assert (await nova.call("DELETE", f"/servers/{ecs_id}")).status == 204
    assert (await es.call("DELETE", f"/servers/{es_id}")).status == 204
    sim.advance(60)
    assert (await es.action(es_id, {"forceDelete": None})).status == 202
    assert es_id not in sim.world.servers
    assert [r["action"] for r in await actions(nova, ecs_id, "2.21")] == ["delete"]
    assert [r["action"] for r in await actions(es, es_id, "2.21")] == ["delete", "delete"]
    gone = await nova.call("GET", f"/servers/{ecs_id}/os-instance-actions", version="2.20")
    assert gone.status == 404


@pytest.mark.parametrize("surface", ["huawei", "openstack"])
async def test_availability_zone_detail_lists_hosts_and_services(
    sim: Sim, http: aiohttp.ClientSession, surface: str
) -> None:
    nova = Nova(sim, http, surface)
    reply = await nova.call("GET", "/os-availability-zone/detail")
    assert reply.status == 200
    zones = {z["zoneName"]: z for z in reply.body["availabilityZoneInfo"]}
    assert set(zones) == {"internal", "az1"}
    assert zones["az1"]["zoneState"] == {"available": True}
    hosts = zones["az1"]["hosts"]
    assert hosts and all(set(h) == {"nova-compute"} for h in hosts.values())
    service = next(iter(hosts.values()))["nova-compute"]
    assert service["available"] is True and service["active"] is True and service["updated_at"]
    assert "nova-scheduler" in zones["internal"]["hosts"]["controller"]


async def test_an_easystack_world_without_instance_actions_answers_404(
    simulator_factory: SimFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """`instance_actions = false`: EasyStack does not expose the action history (the Huawei
    mount keeps it)."""
    world = tmp_path / "world.toml"
    world.write_text("instance_actions = false\n", encoding="utf-8")
    assert load_spec(world).instance_actions is False and load_spec(None).instance_actions
    spec = WorldSpec(speed=0.001, counts={"ecs": 1, "bms": 0, "openstack": 1})
    spec.instance_actions = False
    async with simulator_factory(spec=spec) as sim:
        es, hw = Nova(sim, http, "openstack"), Nova(sim, http, "huawei")
        sid = sim.servers("openstack")[0]
        assert (await es.call("GET", f"/servers/{sid}")).status == 200
        assert (await es.call("GET", f"/servers/{sid}/os-instance-actions")).status == 404
        ecs = sim.servers("ecs")[0]
        assert (await hw.call("GET", f"/servers/{ecs}/os-instance-actions")).status == 200
