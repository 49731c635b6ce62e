"""huaweicloudsdkecs on the ECS v1 reads and the v1.1 resize, against the simulator.

The listing (`list_servers_details`), `show_server`, the v1.1 `resize_server`, `list_flavors` and
`show_server_limits` are called through the official SDK (AK/SK signed, in a worker thread), and
their answers are checked against the SDK's models and the simulated world.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkecs.v2 import (
    ListFlavorsRequest,
    ListServersDetailsRequest,
    ResizePrePaidServerOption,
    ResizeServerRequest,
    ResizeServerRequestBody,
    ShowJobRequest,
    ShowServerLimitsRequest,
    ShowServerRequest,
)

from tests.contract.sdk.test_huaweicloud_sdk import ecs_client, poll_until_done, published
from tests.simulator_fixtures import Sim, SimFactory


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    async with simulator_factory(speed=1e-9, ecs=30, bms=2, openstack=0) as running:
        yield running


async def client_of(sim: Sim) -> Any:
    return ecs_client(await published(sim))


def _ecs(sim: Sim) -> list[Any]:
    return sim.world.visible("ecs")


async def test_list_servers_details_pages_by_page_number_and_counts_the_total(sim: Sim) -> None:
    client = await client_of(sim)
    first = await asyncio.to_thread(
        client.list_servers_details, ListServersDetailsRequest(limit=12, offset=1)
    )
    assert first.count == 30 and len(first.servers) == 12
    seen = [s.id for s in first.servers]
    for page in (2, 3):
        more = await asyncio.to_thread(
            client.list_servers_details, ListServersDetailsRequest(limit=12, offset=page)
        )
        assert more.count == 30
        seen += [s.id for s in more.servers]
    assert sorted(seen) == sorted(s.id for s in _ecs(sim))  # ECSs only, each once
    default = await asyncio.to_thread(client.list_servers_details, ListServersDetailsRequest())
    assert len(default.servers) == 25 and default.count == 30  # default page size 25
    zero = await asyncio.to_thread(
        client.list_servers_details, ListServersDetailsRequest(limit=12, offset=0)
    )
    assert [s.id for s in zero.servers] == [s.id for s in first.servers]  # 0 is page 1
    after = await asyncio.to_thread(
        client.list_servers_details, ListServersDetailsRequest(limit=12, marker=seen[11])
    )
    assert [s.id for s in after.servers] == seen[12:24]
    entry = sim.requests(path_prefix="/v1/")[-1]
    assert entry["rate_key"] == "huawei-ecs:detail" and entry["status"] == 200


async def test_server_detail_has_the_models_shape(sim: Sim) -> None:
    client = await client_of(sim)
    target = _ecs(sim)[0]
    target.tags = {"env": "prod", "bare": ""}
    target.locked = True
    listed = await asyncio.to_thread(
        client.list_servers_details, ListServersDetailsRequest(server_id=target.id)
    )
    assert listed.count == 1
    s = listed.servers[0]
    flavor = sim.world.flavors[target.flavor_id]
    assert (s.id, s.name, s.status, s.tenant_id) == (
        target.id,
        target.name,
        target.status,
        target.project_id,
    )
    assert (s.flavor.id, s.flavor.vcpus, s.flavor.ram) == (
        flavor.id,
        str(flavor.vcpus),
        str(flavor.ram),
    )
    assert s.os_ext_st_svm_state == target.vm_state
    assert s.os_ext_st_spower_state == target.power_state
    assert s.os_ext_st_stask_state is None
    assert sorted(s.tags) == ["bare", "env=prod"]
    assert s.locked is True
    assert s.metadata["charging_mode"] == "0" and s.metadata["metering.resourcespeccode"]
    assert s.sys_tags[0].key == "_sys_enterprise_project_id"
    assert s.os_extended_volumesvolumes_attached[0].boot_index == "0"
    assert s.created.endswith("Z") and s.image.id == target.image_id
    shown = await asyncio.to_thread(client.show_server, ShowServerRequest(server_id=target.id))
    assert shown.server.to_dict() == s.to_dict()
    entry = sim.requests(path_prefix="/v1/")[-1]
    assert entry["rate_key"] == "huawei-ecs:show" and entry["server_ids"] == [target.id]


async def test_list_filters_status_name_flavor_tags_and_not_tags(sim: Sim) -> None:
    client = await client_of(sim)
    servers = _ecs(sim)
    for i, s in enumerate(servers):
        s.tags = {"env": "prod" if i % 3 == 0 else "dev"}
        s.status = "SHUTOFF" if i % 2 else "ACTIVE"
        s.name = f"web-{i:02d}" if i < 5 else f"db-{i:02d}"

    async def ids(**query: Any) -> set[str]:
        answer = await asyncio.to_thread(
            client.list_servers_details, ListServersDetailsRequest(limit=1000, **query)
        )
        assert answer.count == len(answer.servers)
        return {s.id for s in answer.servers}

    assert await ids(status="SHUTOFF") == {s.id for s in servers if s.status == "SHUTOFF"}
    assert await ids(name="web-") == {s.id for s in servers[:5]}
    assert await ids(tags="env=prod") == {s.id for s in servers if s.tags["env"] == "prod"}
    assert await ids(not_tags="env=prod") == {s.id for s in servers if s.tags["env"] != "prod"}
    assert await ids(tags="env") == {s.id for s in servers}
    assert await ids(enterprise_project_id="all_granted_eps") == {s.id for s in servers}
    assert await ids(ip="192.168.") == set()  # simulated servers have no addresses
    flavor = servers[0].flavor_id
    assert await ids(flavor=flavor) == {s.id for s in servers if s.flavor_id == flavor}
    both = await ids(status="ACTIVE", tags="env=prod", name="db-")
    assert both == {
        s.id
        for s in servers
        if s.status == "ACTIVE" and s.tags["env"] == "prod" and s.name.startswith("db-")
    }


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"status": "RUNNING"}, "status"),
        ({"tags": ","}, "tags"),
        ({"marker": "no-such-server"}, "marker"),
    ],
)
async def test_a_bad_filter_is_400_naming_it(sim: Sim, query: dict[str, Any], named: str) -> None:
    client = await client_of(sim)
    request = ListServersDetailsRequest(**query)
    with pytest.raises(ClientRequestException) as caught:
        await asyncio.to_thread(client.list_servers_details, request)
    assert (caught.value.status_code, caught.value.error_code) == (400, "Ecs.0005")
    assert named in caught.value.error_msg


async def test_show_of_an_unknown_or_bms_id_is_404_in_the_huawei_shape(sim: Sim) -> None:
    client = await client_of(sim)
    bms = sim.world.visible("bms")[0].id
    for server_id in ("3f0e0d52-0000-4000-8000-000000000000", bms):
        with pytest.raises(ClientRequestException) as caught:
            await asyncio.to_thread(client.show_server, ShowServerRequest(server_id=server_id))
        assert (caught.value.status_code, caught.value.error_code) == (404, "Ecs.0114")
        assert caught.value.error_msg == "The ECS does not exist."


async def test_list_by_server_id_answers_unknown_ids_with_a_fault(sim: Sim) -> None:
    client = await client_of(sim)
    known = _ecs(sim)[1]
    unknown = "3f0e0d52-0000-4000-8000-000000000001"
    answer = await asyncio.to_thread(
        client.list_servers_details,
        ListServersDetailsRequest(server_id=f"{known.id},{unknown}", status="SHUTOFF"),
    )
    assert [s.id for s in answer.servers] == [known.id, unknown]  # other filters ignored
    assert answer.servers[0].name == known.name
    assert answer.servers[1].name is None and answer.servers[1].fault["code"] == 404


def _other_flavor(sim: Sim, server: Any) -> str:
    return next(
        f.id for f in sim.world.flavors.values() if f.kind == "ecs" and f.id != server.flavor_id
    )


def _resize(server_id: str, flavor: str, *, dry_run: bool = False, mode: str | None = None) -> Any:
    option = ResizePrePaidServerOption(flavor_ref=flavor, mode=mode)
    return ResizeServerRequest(
        server_id=server_id, body=ResizeServerRequestBody(resize=option, dry_run=dry_run)
    )


async def test_resize_v11_dry_run_then_for_real_on_a_stopped_ecs(sim: Sim) -> None:
    client = await client_of(sim)
    server = _ecs(sim)[0]
    server.status, server.vm_state, server.power_state = "SHUTOFF", "stopped", 4
    old, new = server.flavor_id, _other_flavor(sim, server)
    checked = await asyncio.to_thread(client.resize_server, _resize(server.id, new, dry_run=True))
    assert checked.status_code == 202 and checked.job_id is None
    assert server.flavor_id == old and sim.world.jobs == {}
    entry = sim.requests(path_prefix="/v1.1/")[-1]
    assert entry["rate_key"] == "huawei-ecs:resize" and entry["server_ids"] == [server.id]
    started = await asyncio.to_thread(client.resize_server, _resize(server.id, new))
    assert started.status_code == 200 and started.job_id
    assert (server.status, server.task_state) == ("RESIZE", "resize_prep")
    job = await poll_until_done(
        sim, lambda: client.show_job(ShowJobRequest(job_id=started.job_id)), 30.0
    )
    assert job.status == "SUCCESS" and job.entities.server_id == server.id
    assert (server.status, server.flavor_id) == ("SHUTOFF", new)


async def test_resize_v11_of_a_running_ecs_needs_mode_with_stop_server(sim: Sim) -> None:
    client = await client_of(sim)
    server = _ecs(sim)[0]
    server.status, server.vm_state, server.power_state = "ACTIVE", "active", 1
    new = _other_flavor(sim, server)
    with pytest.raises(ClientRequestException) as caught:
        await asyncio.to_thread(client.resize_server, _resize(server.id, new))
    assert (caught.value.status_code, caught.value.error_code) == (400, "Ecs.0100")
    started = await asyncio.to_thread(
        client.resize_server, _resize(server.id, new, mode="withStopServer")
    )
    job = await poll_until_done(
        sim, lambda: client.show_job(ShowJobRequest(job_id=started.job_id)), 30.0
    )
    assert job.status == "SUCCESS"
    assert (server.status, server.flavor_id) == ("ACTIVE", new)


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("same flavor", 400, "Ecs.0810"),
        ("unknown flavor", 400, "Ecs.0029"),
        ("unknown server", 404, "Ecs.0114"),
        ("bad mode", 400, "Ecs.0005"),
    ],
)
async def test_resize_v11_refusals_change_nothing(
    sim: Sim, case: str, status: int, code: str
) -> None:
    client = await client_of(sim)
    server = _ecs(sim)[0]
    server.status, server.vm_state, server.power_state = "SHUTOFF", "stopped", 4
    server_id, flavor, mode = server.id, _other_flavor(sim, server), None
    if case == "same flavor":
        flavor = server.flavor_id
    elif case == "unknown flavor":
        flavor = "no.such.flavor"
    elif case == "unknown server":
        server_id = "3f0e0d52-0000-4000-8000-000000000002"
    else:
        mode = "whileRunning"
    old = server.flavor_id
    with pytest.raises(ClientRequestException) as caught:
        await asyncio.to_thread(client.resize_server, _resize(server_id, flavor, mode=mode))
    assert (caught.value.status_code, caught.value.error_code) == (status, code)
    assert (server.status, server.flavor_id, sim.world.jobs) == ("SHUTOFF", old, {})


async def test_list_flavors_answers_the_ecs_flavors_in_the_seeds_shape(sim: Sim) -> None:
    client = await client_of(sim)
    answer = await asyncio.to_thread(client.list_flavors, ListFlavorsRequest())
    world = {f.id: f for f in sim.world.flavors.values() if f.kind == "ecs"}
    assert sorted(f.id for f in answer.flavors) == sorted(world)
    for f in answer.flavors:
        assert (f.vcpus, f.ram, f.disk) == (str(world[f.id].vcpus), world[f.id].ram, "0")
        assert f.os_flavor_accessis_public is True and f.os_flv_disable_ddisabled is False
        assert {link.rel for link in f.links} == {"self", "bookmark"}
        assert f.os_extra_specs.ecsgeneration == f.id.split(".")[0]
    in_zone = await asyncio.to_thread(
        client.list_flavors, ListFlavorsRequest(availability_zone="az1")
    )
    assert len(in_zone.flavors) == len(world)
    elsewhere = await asyncio.to_thread(
        client.list_flavors, ListFlavorsRequest(availability_zone="no-such-az")
    )
    assert elsewhere.flavors == []
    first = sorted(world)[0]
    one = await asyncio.to_thread(client.list_flavors, ListFlavorsRequest(flavor_id=first))
    assert [f.id for f in one.flavors] == [first]
    paged = await asyncio.to_thread(client.list_flavors, ListFlavorsRequest(limit=2, marker=first))
    assert [f.id for f in paged.flavors] == sorted(world)[1:3]
    assert sim.requests(path_prefix="/v1/")[-1]["rate_key"] == "huawei-ecs:flavors"


async def test_show_server_limits_counts_the_projects_ecss(sim: Sim) -> None:
    client = await client_of(sim)
    answer = await asyncio.to_thread(client.show_server_limits, ShowServerLimitsRequest())
    live = _ecs(sim)
    absolute = answer.absolute
    assert absolute.total_instances_used == len(live)
    assert absolute.total_cores_used == sum(sim.world.flavors[s.flavor_id].vcpus for s in live)
    assert absolute.total_ram_used == sum(sim.world.flavors[s.flavor_id].ram for s in live)
    assert absolute.max_total_instances == 2048 and absolute.max_total_keypairs == -1
    assert sim.requests(path_prefix="/v1/")[-1]["rate_key"] == "huawei-ecs:limits"
