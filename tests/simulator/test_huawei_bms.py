"""Huawei BMS v1 in the simulator: batch actions with jobs, detail paging and filters, show."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fleet.simulator.world import Server
from tests.simulator.huawei_client import Answer, Huawei, huawei, ids_body
from tests.simulator_fixtures import SimFactory

ACTION = "/v1/{pid}/baremetalservers/action"
DETAIL = "/v1/{pid}/baremetalservers/detail"


@pytest.fixture
async def hw(simulator_factory: SimFactory) -> AsyncIterator[Huawei]:
    async with simulator_factory(speed=1e-9, ecs=3, bms=7, openstack=0) as sim, huawei(sim) as c:
        for i, server in enumerate(sim.world.visible("bms")):
            server.name = f"bms-{i:02d}"
            server.status, server.vm_state, server.power_state = "ACTIVE", "active", 1
            server.tags = {"rack": "r1" if i < 4 else "r2"}
        yield c


def bms(hw: Huawei) -> list[Server]:
    return hw.sim.world.visible("bms")


async def act(hw: Huawei, op: str, ids: list[str], **extra: object) -> Answer:
    return await hw.call("POST", ACTION, {op: {**extra, "servers": ids_body(ids)}})


async def test_batch_stop_defaults_to_hard_and_the_job_is_polled_like_ecs(hw: Huawei) -> None:
    a, b = bms(hw)[:2]
    answer = await act(hw, "os-stop", [a.id, b.id])
    assert answer.status == 200
    assert (a.status, a.task_state) == ("ACTIVE", "powering-off")
    job_path = f"/v1/{{pid}}/jobs/{answer.body['job_id']}"
    hw.sim.advance(hw.sim.world.durations["stop_hard"] + 0.5)
    doc = (await hw.call("GET", job_path)).body
    assert doc["status"] == "SUCCESS" and doc["entities"]["sub_jobs_total"] == 2
    assert {s["entities"]["server_id"] for s in doc["entities"]["sub_jobs"]} == {a.id, b.id}
    assert (a.status, b.status) == ("SHUTOFF", "SHUTOFF")
    assert len(hw.sim.requests(rate_key="huawei-bms:jobs")) == 1
    assert hw.sim.requests(rate_key="huawei-bms:action")[0]["action"] == "stop"
    start = await act(hw, "os-start", [a.id])
    assert (a.status, a.task_state) == ("SHUTOFF", "powering-on")
    hw.sim.advance(hw.sim.world.durations["start"] + 0.5)
    done = await hw.call("GET", f"/v1/{{pid}}/jobs/{start.body['job_id']}")
    assert done.body["status"] == "SUCCESS" and a.status == "ACTIVE"


async def test_reboot_types_and_wrong_kind_ids(hw: Huawei) -> None:
    a, b = bms(hw)[:2]
    assert (await act(hw, "reboot", [a.id], type="SOFT")).status == 200
    assert (a.status, a.task_state) == ("REBOOT", "reboot_started")
    assert (await act(hw, "reboot", [b.id])).status == 200
    assert (b.status, b.task_state) == ("HARD_REBOOT", "reboot_started_hard")
    bad_type = await act(hw, "os-stop", [b.id], type="hard")
    assert (bad_type.status, bad_type.code) == (400, "Ecs.0005")
    ecs_id = hw.sim.servers("ecs")[0]
    wrong = await act(hw, "os-start", [ecs_id])
    assert (wrong.status, wrong.code) == (404, "Ecs.0114")
    assert wrong.body["internalError"][0]["id"] == ecs_id
    on_ecs_api = await hw.call(
        "POST", "/v1/{pid}/cloudservers/action", {"os-start": {"servers": ids_body([a.id])}}
    )
    assert on_ecs_api.code == "Ecs.0114"


async def test_the_seed_000_limit_refuses_the_51st_action_in_the_minute(hw: Huawei) -> None:
    running = bms(hw)[0].id  # starting a running BMS is accepted (its sub-job FAILs)
    statuses = [(await act(hw, "os-start", [running])).status for _ in range(50)]
    assert statuses == [200] * 50
    refused = await act(hw, "os-start", [running])
    assert (refused.status, refused.code) == (429, "Common.1503")
    assert len(hw.sim.world.jobs) == 50
    stats = hw.sim.ctx.limits.snapshot()["huawei-bms:action"]
    assert stats["throttled"] == 1 and stats["max_in_window"] == 50


async def test_detail_pages_by_page_number_and_counts_every_match(hw: Huawei) -> None:
    default = await hw.call("GET", DETAIL)
    assert default.status == 200 and default.body["count"] == 7
    seen: list[str] = []
    for page in (1, 2, 3):
        answer = await hw.call("GET", f"{DETAIL}?offset={page}&limit=3")
        assert answer.body["count"] == 7  # the total (SDK ListBareMetalServersResponse)
        assert len(answer.body["servers"]) == (3 if page < 3 else 1)
        seen.extend(s["name"] for s in answer.body["servers"])
    assert seen == [f"bms-{i:02d}" for i in range(7)]
    first_two = await hw.call("GET", f"{DETAIL}?limit=2")
    assert [s["name"] for s in first_two.body["servers"]] == ["bms-00", "bms-01"]
    assert (await hw.call("GET", f"{DETAIL}?offset=0")).code == "Ecs.0005"
    assert (await hw.call("GET", f"{DETAIL}?limit=1001")).code == "Ecs.0005"


async def test_detail_filters_by_tag_status_name_and_flavor(hw: Huawei) -> None:
    everyone = await hw.call("GET", f"{DETAIL}?tags=__type_baremetal")
    assert everyone.body["count"] == 7
    rack2 = await hw.call("GET", f"{DETAIL}?tags=rack%3Dr2")
    assert [s["name"] for s in rack2.body["servers"]] == ["bms-04", "bms-05", "bms-06"]
    bms(hw)[1].status = "SHUTOFF"
    off = await hw.call("GET", f"{DETAIL}?status=SHUTOFF")
    assert [s["name"] for s in off.body["servers"]] == ["bms-01"]
    named = await hw.call("GET", f"{DETAIL}?name=bms-0")
    assert named.body["count"] == 7
    flavor = bms(hw)[0].flavor_id
    assert (await hw.call("GET", f"{DETAIL}?flavor={flavor}")).body["count"] == 7
    assert (await hw.call("GET", f"{DETAIL}?flavor=nope")).body["count"] == 0


async def test_show_returns_the_sdk_server_shape_and_404_for_other_ids(hw: Huawei) -> None:
    server = bms(hw)[0]
    answer = await hw.call("GET", f"/v1/{{pid}}/baremetalservers/{server.id}")
    doc = answer.body["server"]
    assert doc["id"] == server.id and doc["status"] == "ACTIVE"
    assert doc["OS-EXT-STS:vm_state"] == "active" and doc["OS-EXT-STS:task_state"] is None
    assert doc["flavor"]["id"] == server.flavor_id and isinstance(doc["flavor"]["vcpus"], str)
    assert set(doc["tags"]) == {"rack=r1", "__type_baremetal"}
    assert doc["tenant_id"] == hw.pid and doc["locked"] is False
    for other in ("no-such-id", hw.sim.servers("ecs")[0]):
        missing = await hw.call("GET", f"/v1/{{pid}}/baremetalservers/{other}")
        assert (missing.status, missing.code) == (404, "Ecs.0114")
    assert len(hw.sim.requests(rate_key="huawei-bms:show")) == 3
