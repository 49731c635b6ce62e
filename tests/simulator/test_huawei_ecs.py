"""Huawei ECS v1 in the simulator: batch actions, jobs and their roll-up, resize, batch delete.

Simulated time is frozen (speed ~0) and moved by hand, so every interim state is observable.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fleet.simulator.world import Server
from tests.simulator.huawei_client import Answer, Huawei, huawei, ids_body
from tests.simulator_fixtures import Sim, SimFactory

ACTION = "/v1/{pid}/cloudservers/action"
DELETE = "/v1/{pid}/cloudservers/delete"


@pytest.fixture
async def hw(simulator_factory: SimFactory) -> AsyncIterator[Huawei]:
    async with simulator_factory(speed=1e-9, ecs=12, bms=4, openstack=0) as sim, huawei(sim) as c:
        yield c


def pick(sim: Sim, status: str, n: int, kind: str = "ecs") -> list[Server]:
    """`n` idle servers of `kind`, forced into `status` (ACTIVE or SHUTOFF)."""
    chosen = [s for s in sim.world.visible(kind) if not s.locked][:n]
    for s in chosen:
        s.status, s.vm_state, s.power_state = (
            ("ACTIVE", "active", 1) if status == "ACTIVE" else ("SHUTOFF", "stopped", 4)
        )
    return chosen


async def job(hw: Huawei, job_id: str) -> dict[str, Any]:
    answer = await hw.call("GET", f"/v1/{{pid}}/jobs/{job_id}")
    assert answer.status == 200, answer.body
    assert isinstance(answer.body, dict)
    return answer.body


def subs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entities = doc["entities"]
    assert isinstance(entities, dict)
    return {s["entities"]["server_id"]: s for s in entities["sub_jobs"]}


async def act(hw: Huawei, op: str, ids: list[str], **extra: object) -> Answer:
    return await hw.call("POST", ACTION, {op: {**extra, "servers": ids_body(ids)}})


async def test_batch_stop_shows_powering_off_and_the_job_rolls_up_to_success(hw: Huawei) -> None:
    servers = pick(hw.sim, "ACTIVE", 3)
    ids = [s.id for s in servers]
    answer = await act(hw, "os-stop", ids)
    assert answer.status == 200 and set(answer.body) == {"job_id"}
    job_id = answer.body["job_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)
    assert [(s.status, s.task_state) for s in servers] == [("ACTIVE", "powering-off")] * 3
    first = await job(hw, job_id)
    assert first["status"] == "INIT" and first["end_time"] is None
    assert first["entities"] == {"sub_jobs_total": 3, "sub_jobs": list(subs(first).values())}
    assert set(subs(first)) == set(ids)
    hw.sim.advance(1.5)
    assert (await job(hw, job_id))["status"] == "RUNNING"
    hw.sim.advance(20)
    done = await job(hw, job_id)
    assert done["status"] == "SUCCESS" and done["error_code"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(done["end_time"]))
    for sub in subs(done).values():
        assert sub["status"] == "SUCCESS" and sub["error_code"] is None
        assert sub["fail_reason"] is None and sub["end_time"] and sub["job_id"]
    assert [(s.status, s.vm_state, s.task_state) for s in servers] == [
        ("SHUTOFF", "stopped", None)
    ] * 3
    logged = hw.sim.requests(rate_key="huawei-ecs:action")
    assert logged[0]["server_ids"] == ids and logged[0]["action"] == "stop"
    assert len(hw.sim.requests(rate_key="huawei-ecs:jobs")) == 3


async def test_start_and_soft_and_hard_reboot_follow_table_a4(hw: Huawei) -> None:
    stopped = pick(hw.sim, "SHUTOFF", 1)[0]
    await act(hw, "os-start", [stopped.id])
    assert (stopped.status, stopped.task_state) == ("SHUTOFF", "powering-on")
    hw.sim.advance(21)
    assert (stopped.status, stopped.vm_state, stopped.task_state) == ("ACTIVE", "active", None)
    answer = await act(hw, "reboot", [stopped.id], type="SOFT")
    assert answer.status == 200
    assert (stopped.status, stopped.task_state) == ("REBOOT", "rebooting")
    hw.sim.advance(31)
    await act(hw, "reboot", [stopped.id], type="HARD")
    assert (stopped.status, stopped.task_state) == ("HARD_REBOOT", "rebooting_hard")
    hw.sim.advance(16)
    assert (stopped.status, stopped.task_state) == ("ACTIVE", None)


async def test_starting_a_running_server_fails_only_its_sub_job_with_ecs_0100(hw: Huawei) -> None:
    running, stopped = pick(hw.sim, "ACTIVE", 2)
    stopped.status, stopped.vm_state = "SHUTOFF", "stopped"
    answer = await act(hw, "os-start", [running.id, stopped.id])
    assert answer.status == 200
    assert running.task_state is None and not running.busy
    hw.sim.advance(25)
    doc = await job(hw, answer.body["job_id"])
    assert doc["status"] == "FAIL" and doc["error_code"] == "Ecs.0100"
    by_id = subs(doc)
    assert by_id[stopped.id]["status"] == "SUCCESS"
    failed = by_id[running.id]
    assert failed["status"] == "FAIL" and failed["error_code"] == "Ecs.0100"
    assert failed["fail_reason"] and failed["entities"]["errorcode_message"]
    assert running.status == "ACTIVE" and stopped.status == "ACTIVE"


async def test_job_fail_fault_fails_the_chosen_server_which_keeps_its_status(hw: Huawei) -> None:
    doomed, fine = pick(hw.sim, "ACTIVE", 2)
    hw.sim.fault(kind="job_fail", server_ids=[doomed.id], error_code="Ecs.1000", reason="boom")
    answer = await act(hw, "os-stop", [doomed.id, fine.id], type="HARD")
    hw.sim.advance(1.5)
    assert (await job(hw, answer.body["job_id"]))["status"] == "RUNNING"
    hw.sim.advance(10)
    doc = await job(hw, answer.body["job_id"])
    assert (doc["status"], doc["error_code"], doc["fail_reason"]) == ("FAIL", "Ecs.1000", "boom")
    assert subs(doc)[doomed.id]["error_code"] == "Ecs.1000"
    assert subs(doc)[fine.id]["status"] == "SUCCESS"
    assert doomed.status == "ACTIVE" and doomed.fault is not None
    assert fine.status == "SHUTOFF"


async def test_unknown_locked_and_busy_ids_refuse_the_whole_batch(hw: Huawei) -> None:
    a, b, c = pick(hw.sim, "ACTIVE", 3)
    bms = hw.sim.servers("bms")[0]
    unknown = await act(hw, "os-stop", [a.id, "no-such-id", bms])
    assert (unknown.status, unknown.code) == (404, "Ecs.0114")
    assert {e["id"]: e["error_code"] for e in unknown.body["internalError"]} == {
        "no-such-id": "Ecs.0114",
        bms: "Ecs.0114",
    }
    assert a.task_state is None and hw.sim.world.jobs == {}
    b.locked = True
    locked = await act(hw, "os-stop", [a.id, b.id])
    assert (locked.status, locked.code) == (400, "Ecs.0605")
    assert [e["id"] for e in locked.body["internalError"]] == [b.id]
    assert (await act(hw, "os-stop", [c.id])).status == 200
    busy = await act(hw, "reboot", [a.id, c.id], type="SOFT")
    assert (busy.status, busy.code) == (501, "Ecs.0603")
    assert busy.body["internalError"][0]["error_message"]
    mixed = await act(hw, "os-stop", ["nope", b.id])
    assert (mixed.status, mixed.code) == (400, "Ecs.0611")
    assert len(mixed.body["internalError"]) == 2
    assert a.task_state is None and len(hw.sim.world.jobs) == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"os-start": {"servers": []}},
        {"os-start": {"servers": [{"id": 5}]}},
        {"os-start": {"servers": [{"id": "x"}, {"id": "x"}]}},
        {"os-stop": {"type": "MEDIUM", "servers": [{"id": "x"}]}},
        {"reboot": {"servers": [{"id": "x"}]}},
        {"os-start": {"servers": [{"id": "x"}]}, "os-stop": {"servers": [{"id": "x"}]}},
    ],
)
async def test_malformed_batches_are_ecs_0005(hw: Huawei, body: dict[str, object]) -> None:
    answer = await hw.call("POST", ACTION, body)
    assert (answer.status, answer.code) == (400, "Ecs.0005")


async def test_more_than_1000_servers_is_ecs_0118(hw: Huawei) -> None:
    hw.sim.set_limit("huawei-ecs:action", None)
    answer = await act(hw, "os-start", [f"id-{i}" for i in range(1001)])
    assert (answer.status, answer.code) == (400, "Ecs.0118")


async def test_resize_checks_status_flavor_and_dry_run_then_runs(hw: Huawei) -> None:
    running, stopped = pick(hw.sim, "ACTIVE", 2)
    stopped.status, stopped.vm_state = "SHUTOFF", "stopped"
    target = next(f for f in ("s6.small.1", "c6.xlarge.2") if f != stopped.flavor_id)
    path = "/v1/{pid}/cloudservers/%s/resize"

    async def resize(server_id: str, flavor: str, **extra: object) -> Answer:
        return await hw.call("POST", path % server_id, {"resize": {"flavorRef": flavor}, **extra})

    assert (await resize(running.id, target)).code == "Ecs.0100"
    assert (await resize(stopped.id, "no-such-flavor")).code == "Ecs.0029"
    assert (await resize(stopped.id, "physical.s4.medium")).code == "Ecs.0029"
    assert (await resize(stopped.id, stopped.flavor_id)).code == "Ecs.0810"
    missing = await resize("no-such-id", target)
    assert (missing.status, missing.code) == (404, "Ecs.0114")
    dry = await resize(stopped.id, target, dry_run=True)
    assert (dry.status, dry.body) == (202, None)
    assert stopped.flavor_id != target and not stopped.busy and hw.sim.world.jobs == {}
    answer = await resize(stopped.id, target)
    assert answer.status == 200
    assert (stopped.status, stopped.task_state) == ("RESIZE", "resize_prep")
    doc = await job(hw, answer.body["job_id"])
    assert doc["entities"]["server_id"] == stopped.id
    assert doc["entities"]["sub_jobs_total"] == 1
    hw.sim.advance(61)
    assert (await job(hw, answer.body["job_id"]))["status"] == "SUCCESS"
    assert (stopped.status, stopped.flavor_id, stopped.task_state) == ("SHUTOFF", target, None)


async def test_batch_delete_marks_deleting_then_the_server_is_gone(hw: Huawei) -> None:
    victim = pick(hw.sim, "ACTIVE", 1)[0]
    bad = await hw.call("POST", DELETE, {"servers": ids_body([victim.id]), "delete_volume": "y"})
    assert bad.code == "Ecs.0005"
    answer = await hw.call(
        "POST",
        DELETE,
        {"servers": ids_body([victim.id]), "delete_publicip": False, "delete_volume": False},
    )
    assert answer.status == 200
    assert (victim.status, victim.task_state) == ("ACTIVE", "deleting")
    hw.sim.advance(16)
    assert (await job(hw, answer.body["job_id"]))["status"] == "SUCCESS"
    assert victim.status == "DELETED"
    again = await hw.call("POST", DELETE, {"servers": ids_body([victim.id])})
    assert (again.status, again.code) == (404, "Ecs.0114")
    query = {"action": "filter", "matches": [{"key": "resource_name", "value": victim.name}]}
    found = await hw.call("POST", "/v1/{pid}/servers/resource_instances/action", query)
    assert found.body["total_count"] == 0
    tags = await hw.call("GET", f"/v1/{{pid}}/servers/{victim.id}/tags")
    assert (tags.status, tags.code) == (404, "Ecs.0614")


async def test_unknown_job_is_common_0011_and_responses_carry_request_ids(hw: Huawei) -> None:
    answer = await hw.call("GET", "/v1/{pid}/jobs/ffffffffffffffffffffffffffffffff")
    assert (answer.status, answer.code) == (400, "Common.0011")
    assert answer.headers["X-Request-Id"]
    ok = await act(hw, "os-start", [pick(hw.sim, "SHUTOFF", 1)[0].id])
    assert ok.headers["X-Request-Id"] != answer.headers["X-Request-Id"]
