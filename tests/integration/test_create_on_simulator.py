"""Creates end to end in one process against the embedded simulator (real loopback HTTP, SQLite,
the real drivers, admission, planner, executor and engine): each dialect, then the faults a cloud
has on a bad day (a lost answer, throttling, a build that fails, the quota running out mid-way).
The simulator's world and request log are the witnesses."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fleet.api.views import subjob_out
from fleet.drivers.base import CreateRequest
from fleet.engine.admission import ActRequest
from fleet.engine.templates import slot_of
from fleet.service import Fleet
from jobs.errors import FieldError
from jobs.records import NewOperation
from jobs.states import OperationState, State
from tests.integration.test_operations_on_simulator import (
    SimControl,
    performed,
    running,
    subjobs,
    wait_for,
    wait_terminal,
)

KIND = {"ecs-sim": "ecs", "bms-sim": "bms", "easystack-sim": "openstack"}
CREATE_PATH = {
    "ecs-sim": "/cloudservers",
    "bms-sim": "/baremetalservers",
    "easystack-sim": "/servers",
}


async def create_params(sim: SimControl, endpoint: str, count: int, name: str) -> dict[str, Any]:
    """A valid create for `endpoint`, from what the simulator says a create needs."""
    async with sim.http.get(f"{sim.url}/_sim/endpoints") as resp:
        eps: dict[str, Any] = await resp.json()
    kind = KIND[endpoint]
    need = eps["openstack"]["create"] if kind == "openstack" else eps["huawei"]["create"][kind]
    params = {
        "count": count,
        "name": name,
        "flavor": need["flavor"],
        "image": need["image"],
        "network": need["network"],
        "availability_zone": need["availability_zone"],
        "tags": {"env": "test", "expires-at": "2030-01-01"},
    }
    if "vpc" in need:
        params["vpc"] = need["vpc"]
    return params


async def admit_create(
    fleet: Fleet,
    sim: SimControl,
    endpoint: str,
    count: int,
    name: str = "web-{n:03d}",
    strategy: dict[str, Any] | None = None,
) -> NewOperation:
    params = await create_params(sim, endpoint, count, name)
    return await fleet.admission.admit(
        ActRequest("create", {"endpoints": [endpoint]}, params, strategy or {}, created_by="t")
    )


async def start_create(
    fleet: Fleet,
    sim: SimControl,
    endpoint: str,
    count: int,
    name: str = "web-{n:03d}",
    strategy: dict[str, Any] | None = None,
) -> str:
    new = await admit_create(fleet, sim, endpoint, count, name, strategy)
    view, created = await fleet.operations.create(new)
    assert created
    return view.operation.id


async def created_servers(sim: SimControl, op_id: str) -> list[dict[str, Any]]:
    return [s for s in (await sim.servers()).values() if s["tags"].get("fleet-op") == op_id]


async def create_posts(sim: SimControl, endpoint: str) -> list[dict[str, Any]]:
    path = CREATE_PATH[endpoint]
    return [
        e
        for e in await sim.requests()
        if e["method"] == "POST" and str(e["path"]).endswith(path) and "/action" not in e["path"]
    ]


@pytest.mark.parametrize("endpoint", ["ecs-sim", "bms-sim", "easystack-sim"])
async def test_create_makes_exactly_the_servers_asked_for(tmp_path: Path, endpoint: str) -> None:
    async with running(tmp_path) as (fleet, sim):
        op_id = await start_create(fleet, sim, endpoint, 30)
        view = await wait_terminal(fleet, op_id, 60)
        assert view.state is OperationState.SUCCEEDED, view
        servers = await created_servers(sim, op_id)
        assert len(servers) == 30
        assert {s["status"] for s in servers} == {"ACTIVE"}
        assert all(s["tags"]["expires-at"] == "2030-01-01" for s in servers)
        names = sorted(s["name"] for s in servers)
        if endpoint == "easystack-sim":
            assert names == [f"web-{n:03d}" for n in range(1, 31)]
        else:  # one base name per batch call: its first server's number, the cloud's suffix
            stem = f"web-{op_id.replace('-', '')[:8]}"
            firsts = [1] if endpoint == "ecs-sim" else [1, 25]
            expected = [
                f"{stem}-{first}-{p:04d}"
                for first in firsts
                for p in range(1, min(30 - first + 1, 500 if endpoint == "ecs-sim" else 24) + 1)
            ]
            assert names == sorted(expected)
            assert sorted(slot_of(n, "web-{n:03d}", op_id) or 0 for n in names) == list(
                range(1, 31)
            )
        posts = await create_posts(sim, endpoint)
        expected_calls = {"ecs-sim": 1, "bms-sim": 2, "easystack-sim": 30}[endpoint]
        assert len(posts) == expected_calls
        rows = await subjobs(fleet, op_id)
        ids = {s["id"] for s in servers}
        assert {str(r.reason).split()[1] for r in rows} == ids  # "created <id> (<name>)"
        assert {subjob_out(r).server_id for r in rows} == ids  # as the API shows each sub-job


@pytest.mark.parametrize("endpoint", ["ecs-sim", "easystack-sim"])
async def test_a_lost_answer_is_read_back_and_never_creates_twice(
    tmp_path: Path, endpoint: str
) -> None:
    async with running(tmp_path) as (fleet, sim):
        key = "huawei-ecs:create" if endpoint == "ecs-sim" else "openstack:create"
        await sim.fault({"kind": "lost_answer", "match": key, "count": 2})
        await sim.fault({"kind": "drop", "match": key, "count": 1})
        op_id = await start_create(fleet, sim, endpoint, 12, name="db-{n}")
        view = await wait_terminal(fleet, op_id, 60)
        assert view.state is OperationState.SUCCEEDED, view
        servers = await created_servers(sim, op_id)
        assert len(servers) == 12
        assert len({s["name"] for s in servers}) == 12
        performed_posts = [
            p
            for p in await create_posts(sim, endpoint)
            if performed(p) or p["status"] in (504, None)
        ]
        assert performed_posts


async def test_a_failed_build_fails_that_server_with_the_vendors_reason(tmp_path: Path) -> None:
    async with running(tmp_path) as (fleet, sim):
        await sim.fault(
            {
                "kind": "create_fail",
                "match": "huawei-ecs:create",
                "count": 2,
                "reason": "no capacity",
            }
        )
        op_id = await start_create(fleet, sim, "ecs-sim", 6, strategy={"max_errors": 5})
        view = await wait_terminal(fleet, op_id, 60)
        rows = await subjobs(fleet, op_id)
        states = Counter(r.state for r in rows)
        assert states == {State.SUCCEEDED: 4, State.FAILED: 2}, view
        failed = [r for r in rows if r.state is State.FAILED]
        assert all("no capacity" in str(r.error_message) for r in failed)
        made = await created_servers(sim, op_id)
        assert len(made) == 6  # a failed build stays listed, and its failure names it
        in_error = {s["id"] for s in made if s["status"] == "ERROR"}
        assert len(in_error) == 2
        assert {i for r in failed for i in in_error if f"(server {i})" in str(r.error_message)} == (
            in_error
        )


async def test_throttled_creates_are_retried_without_a_second_server(tmp_path: Path) -> None:
    async with running(tmp_path) as (fleet, sim):
        await sim.fault({"kind": "throttle", "match": "huawei-ecs:create", "count": 2})
        op_id = await start_create(fleet, sim, "ecs-sim", 5)
        view = await wait_terminal(fleet, op_id, 120)
        assert view.state is OperationState.SUCCEEDED, view
        assert len(await created_servers(sim, op_id)) == 5


async def test_quota_running_out_mid_way_fails_the_rest_with_the_numbers(tmp_path: Path) -> None:
    world = tmp_path / "world.toml"
    world.write_text("[generate]\necs = 4\nbms = 2\nopenstack = 10\n[quotas]\nopenstack = 20\n")
    async with running(tmp_path, world=world) as (fleet, sim):
        new = await admit_create(fleet, sim, "easystack-sim", 8, strategy={"max_errors": 8})
        driver = fleet.drivers["easystack-sim"]
        need = await create_params(sim, "easystack-sim", 1, "other")
        for n in range(4):  # someone else takes room after admission
            await driver.create(
                CreateRequest(f"other-{n}", 1, need["flavor"], need["image"], need["network"], {})
            )
        view, _ = await fleet.operations.create(new)
        op_id = view.operation.id
        view = await wait_terminal(fleet, op_id, 60)
        rows = await subjobs(fleet, op_id)
        assert Counter(r.state for r in rows) == {State.SUCCEEDED: 6, State.FAILED: 2}, view
        failed = [r for r in rows if r.state is State.FAILED]
        assert all("Quota exceeded" in str(r.error_message) for r in failed)
        assert len(await created_servers(sim, op_id)) == 6


async def test_admission_refuses_bad_input_naming_the_field(tmp_path: Path) -> None:
    world = tmp_path / "world.toml"
    world.write_text("[generate]\necs = 4\nbms = 2\nopenstack = 10\n[quotas]\necs = 5\n")
    async with running(tmp_path, world=world) as (fleet, sim):
        good = await create_params(sim, "ecs-sim", 2, "web-{n}")
        cases = {
            "params.count": good | {"count": 0},
            "params.name": good | {"name": "web"},
            "params.flavor": good | {"flavor": "no-such-flavor"},
            "params.vpc": {k: v for k, v in good.items() if k != "vpc"},
            "params.admin_password": good | {"admin_password": "hunter2"},
            "params.image": {k: v for k, v in good.items() if k != "image"},
            "params.tags.expires-at": good | {"tags": {"expires-at": "tomorrow"}},
        }
        for field, params in cases.items():
            with pytest.raises(FieldError) as caught:
                await fleet.admission.admit(
                    ActRequest("create", {"endpoints": ["ecs-sim"]}, params)
                )
            assert caught.value.field == field, (field, caught.value)
        with pytest.raises(FieldError) as caught:
            await fleet.admission.admit(ActRequest("create", {"endpoints": ["ecs-sim"]}, good))
        assert caught.value.field == "params.count"
        assert "4 of 5 used, room for 1" in caught.value.message
        for ref in ("env:FLEET_TEST_UNSET_PASSWORD", f"file:{tmp_path}/no-such-file"):
            with pytest.raises(FieldError) as caught:  # unreadable where the calls would read it
                await fleet.admission.admit(
                    ActRequest("create", {"endpoints": ["ecs-sim"]}, good | {"admin_password": ref})
                )
            assert caught.value.field == "params.admin_password", caught.value
            assert "(in the service)" in caught.value.message
        (tmp_path / "pw").write_text("Sim-pass-123\n")
        readable = good | {"count": 1, "admin_password": f"file:{tmp_path}/pw"}
        assert await fleet.admission.admit(
            ActRequest("create", {"endpoints": ["ecs-sim"]}, readable)
        )
        for targets in ({}, {"tags_all": {"env": "dev"}}):  # a create says where, nothing else
            with pytest.raises(FieldError) as caught:
                await fleet.admission.admit(ActRequest("create", targets, good))
            assert caught.value.field == "targets.endpoints", caught.value


async def test_admission_refuses_a_bms_create_beyond_the_quota_with_the_numbers(
    tmp_path: Path,
) -> None:
    world = tmp_path / "world.toml"
    world.write_text("[generate]\necs = 4\nbms = 2\nopenstack = 10\n[quotas]\nbms = 3\n")
    async with running(tmp_path, world=world) as (fleet, sim):
        params = await create_params(sim, "bms-sim", 2, "db-{n}")
        with pytest.raises(FieldError) as caught:
            await fleet.admission.admit(ActRequest("create", {"endpoints": ["bms-sim"]}, params))
        assert caught.value.field == "params.count"
        assert "quota of bms-sim: 2 of 3 used, room for 1" in caught.value.message
        admitted = await fleet.admission.admit(
            ActRequest("create", {"endpoints": ["bms-sim"]}, params | {"count": 1})
        )
        assert admitted is not None


async def test_retry_failed_creates_a_new_server_for_a_failed_build(tmp_path: Path) -> None:
    """The failed build stays listed in ERROR under the same name; the retry's new server is the
    one the sub-job follows."""
    async with running(tmp_path) as (fleet, sim):
        await sim.fault({"kind": "create_fail", "match": "openstack:create", "count": 1})
        op_id = await start_create(fleet, sim, "easystack-sim", 3, strategy={"max_errors": 3})
        await wait_terminal(fleet, op_id, 60)
        assert Counter(r.state for r in await subjobs(fleet, op_id))[State.FAILED] == 1
        assert await fleet.operations.retry_failed(op_id, "tests") == 1
        view = await wait_terminal(fleet, op_id, 60)
        assert view.state is OperationState.SUCCEEDED, view
        servers = await created_servers(sim, op_id)
        assert sorted(s["status"] for s in servers) == ["ACTIVE", "ACTIVE", "ACTIVE", "ERROR"]


async def test_waves_apply_to_a_create(tmp_path: Path) -> None:
    """A create's strategy holds as any operation's: its first wave (two servers) is made, then
    it pauses; resumed, the rest are made, every server once."""
    async with running(tmp_path) as (fleet, sim):
        strategy = {"waves": [2, "100%"], "pause_after_wave": True}
        op_id = await start_create(fleet, sim, "easystack-sim", 5, strategy=strategy)
        view = await wait_for(fleet, op_id, lambda v: v.operation.paused, 60)
        assert view.counts.get(State.SUCCEEDED) == 2, view.counts
        assert len(await created_servers(sim, op_id)) == 2
        await fleet.operations.resume(op_id, "t")
        view = await wait_terminal(fleet, op_id, 60)
        assert view.state is OperationState.SUCCEEDED, view
        assert len(await created_servers(sim, op_id)) == 5
        assert len(await create_posts(sim, "easystack-sim")) == 5
