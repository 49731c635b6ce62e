"""huaweicloudsdkecs `create_post_paid_servers` / `create_servers` and huaweicloudsdkbms
`create_bare_metal_servers` against the simulator: answers, jobs, listings, instance actions and
the vendor's errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from huaweicloudsdkbms.v1 import (
    CreateBaremetalServersBody,
    CreateBareMetalServersRequest,
    CreateServers,
    ExtendParam,
    MetaDataInfo,
    Nics,
    ShowTenantQuotaRequest,
    SystemTags,
)
from huaweicloudsdkbms.v1 import ShowJobInfosRequest as BmsJobRequest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkecs.v2 import (
    CreatePostPaidServersRequest,
    CreatePostPaidServersRequestBody,
    CreateServersRequest,
    CreateServersRequestBody,
    ListServersDetailsRequest,
    PostPaidServer,
    PostPaidServerNic,
    PostPaidServerRootVolume,
    PostPaidServerTag,
    PrePaidServer,
    PrePaidServerNic,
    PrePaidServerRootVolume,
    PrePaidServerTag,
    ShowJobRequest,
)

from tests.contract.sdk.test_huaweicloud_sdk import bms_client, ecs_client, poll_until_done
from tests.simulator_fixtures import Sim, SimFactory


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    async with simulator_factory(speed=1e-9, ecs=3, bms=2, openstack=0) as running:
        yield running


async def published(sim: Sim) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{sim.base_url}/_sim/endpoints") as resp,
    ):
        huawei: dict[str, Any] = (await resp.json())["huawei"]
        return huawei


def post_paid(need: dict[str, str], **over: Any) -> PostPaidServer:
    fields: dict[str, Any] = {
        "flavor_ref": need["flavor"],
        "image_ref": need["image"],
        "name": "web",
        "vpcid": need["vpc"],
        "nics": [PostPaidServerNic(subnet_id=need["network"])],
        "root_volume": PostPaidServerRootVolume(volumetype="SSD"),
        "availability_zone": need["availability_zone"],
        **over,
    }
    return PostPaidServer(**fields)


async def test_create_post_paid_servers_makes_named_tagged_servers(sim: Sim) -> None:
    ep = await published(sim)
    need, client = ep["create"]["ecs"], ecs_client(ep)
    tags = [PostPaidServerTag(key="fleet-op", value="op1")]
    body = CreatePostPaidServersRequestBody(server=post_paid(need, count=3, server_tags=tags))
    answer = await asyncio.to_thread(
        client.create_post_paid_servers, CreatePostPaidServersRequest(body=body)
    )
    assert len(answer.job_id) == 32 and len(answer.server_ids) == 3
    made = [sim.world.servers[i] for i in answer.server_ids]
    assert [s.name for s in made] == ["web-0001", "web-0002", "web-0003"]
    assert all(s.status == "BUILD" and s.tags == {"fleet-op": "op1"} for s in made)
    job = await poll_until_done(
        sim, lambda: client.show_job(ShowJobRequest(job_id=answer.job_id)), 20
    )
    assert job.status == "SUCCESS" and job.job_type == "createServer"
    assert job.entities.sub_jobs_total == 3
    assert {s.job_type for s in job.entities.sub_jobs} == {"createSingleServer"}
    assert {s.entities.server_id for s in job.entities.sub_jobs} == set(answer.server_ids)
    listed = await asyncio.to_thread(
        client.list_servers_details, ListServersDetailsRequest(name="web-")
    )
    assert {s.name: s.status for s in listed.servers} == dict.fromkeys(
        ["web-0001", "web-0002", "web-0003"], "ACTIVE"
    )
    [action] = sim.world.actions.of(answer.server_ids[0])
    assert action.action == "create" and action.events[0].result == "Success"


async def test_create_post_paid_servers_dry_run_creates_nothing(sim: Sim) -> None:
    ep = await published(sim)
    before = len(sim.world.servers)
    body = CreatePostPaidServersRequestBody(dry_run=True, server=post_paid(ep["create"]["ecs"]))
    await asyncio.to_thread(
        ecs_client(ep).create_post_paid_servers, CreatePostPaidServersRequest(body=body)
    )
    assert len(sim.world.servers) == before
    assert sim.requests(path_prefix="/v1/")[-1]["status"] == 202


async def test_create_servers_v11_answers_job_and_ids(sim: Sim) -> None:
    ep = await published(sim)
    need, client = ep["create"]["ecs"], ecs_client(ep)
    server = PrePaidServer(
        flavor_ref=need["flavor"],
        image_ref=need["image"],
        name="api",
        vpcid=need["vpc"],
        nics=[PrePaidServerNic(subnet_id=need["network"])],
        root_volume=PrePaidServerRootVolume(volumetype="SAS"),
        server_tags=[PrePaidServerTag(key="env", value="test")],
    )
    answer = await asyncio.to_thread(
        client.create_servers, CreateServersRequest(body=CreateServersRequestBody(server=server))
    )
    [sid] = answer.server_ids
    assert sim.world.servers[sid].name == "api" and sim.world.servers[sid].tags == {"env": "test"}
    job = await poll_until_done(
        sim, lambda: client.show_job(ShowJobRequest(job_id=answer.job_id)), 20
    )
    assert job.status == "SUCCESS" and sim.world.servers[sid].status == "ACTIVE"


async def test_ecs_create_errors_are_the_vendors(sim: Sim) -> None:
    ep = await published(sim)
    need, client = ep["create"]["ecs"], ecs_client(ep)

    async def refused(server: PostPaidServer) -> ClientRequestException:
        body = CreatePostPaidServersRequestBody(server=server)
        with pytest.raises(ClientRequestException) as caught:
            await asyncio.to_thread(
                client.create_post_paid_servers, CreatePostPaidServersRequest(body=body)
            )
        return caught.value

    bad = await refused(post_paid(need, flavor_ref="no.such.flavor"))
    assert (bad.status_code, bad.error_code) == (400, "Ecs.0029")
    image = await refused(post_paid(need, image_ref="00000000-0000-4000-8000-000000000000"))
    assert image.error_code == "Ecs.0031"
    too_many = await refused(post_paid(need, count=501))
    assert too_many.error_code == "Ecs.0118"
    sim.world.catalog.quotas["ecs"] = 4  # 3 exist
    quota = await refused(post_paid(need, count=2))
    assert (quota.status_code, quota.error_code) == (400, "Ecs.0001")
    assert "Insufficient ECS quota" in quota.error_msg
    assert len(sim.world.visible("ecs")) == 3


async def test_create_fail_fault_ends_servers_in_error(sim: Sim) -> None:
    ep = await published(sim)
    client = ecs_client(ep)
    sim.fault(kind="create_fail", match="huawei-ecs:create", count=1)
    body = CreatePostPaidServersRequestBody(server=post_paid(ep["create"]["ecs"], count=2))
    answer = await asyncio.to_thread(
        client.create_post_paid_servers, CreatePostPaidServersRequest(body=body)
    )
    job = await poll_until_done(
        sim, lambda: client.show_job(ShowJobRequest(job_id=answer.job_id)), 20
    )
    assert job.status == "FAIL" and job.error_code == "Ecs.0204"
    states = [sim.world.servers[i].status for i in answer.server_ids]
    assert states == ["ERROR", "ACTIVE"]
    failed = sim.world.servers[answer.server_ids[0]]
    assert failed.fault is not None and sim.world.actions.of(failed.id)[0].message == "Error"


def bms_server(need: dict[str, str], **over: Any) -> CreateServers:
    fields: dict[str, Any] = {
        "flavor_ref": need["flavor"],
        "image_ref": need["image"],
        "name": "metal",
        "metadata": MetaDataInfo(op_svc_userid="u1"),
        "nics": [Nics(subnet_id=need["network"])],
        "availability_zone": need["availability_zone"],
        "vpcid": need["vpc"],
        "extendparam": ExtendParam(charging_mode="postPaid"),
        **over,
    }
    return CreateServers(**fields)


async def test_create_bare_metal_servers_answers_order_and_job(sim: Sim) -> None:
    ep = await published(sim)
    need, client = ep["create"]["bms"], bms_client(ep)
    tags = [SystemTags(key="team", value="alpha")]
    body = CreateBaremetalServersBody(server=bms_server(need, count=2, server_tags=tags))
    answer = await asyncio.to_thread(
        client.create_bare_metal_servers, CreateBareMetalServersRequest(body=body)
    )
    assert answer.order_id and len(answer.job_id) == 32
    job = await poll_until_done(
        sim, lambda: client.show_job_infos(BmsJobRequest(job_id=answer.job_id)), 20
    )
    assert job.status == "SUCCESS"
    made = [sim.world.servers[s.entities.server_id] for s in job.entities.sub_jobs]
    assert sorted(s.name for s in made) == ["metal-0001", "metal-0002"]
    assert all(
        s.kind == "bms" and s.status == "ACTIVE" and s.tags == {"team": "alpha"} for s in made
    )
    assert sim.world.actions.of(made[0].id)[0].action == "create"
    assert sim.requests(path_prefix="/v1/")[0]["rate_key"] == "huawei-bms:create"


async def test_bms_create_errors(sim: Sim) -> None:
    ep = await published(sim)
    need, client = ep["create"]["bms"], bms_client(ep)

    async def refused(server: CreateServers) -> ClientRequestException:
        body = CreateBaremetalServersBody(server=server)
        with pytest.raises(ClientRequestException) as caught:
            await asyncio.to_thread(
                client.create_bare_metal_servers, CreateBareMetalServersRequest(body=body)
            )
        return caught.value

    assert (await refused(bms_server(need, flavor_ref="s6.large.2"))).error_code == "Ecs.0029"
    assert (await refused(bms_server(need, count=25))).error_code == "Ecs.0118"
    sim.world.catalog.quotas["bms"] = 2  # 2 exist
    assert (await refused(bms_server(need))).error_code == "Ecs.0001"


async def test_bms_tenant_quota_counts_the_live_bms(sim: Sim) -> None:
    client = bms_client(await published(sim))
    quota = await asyncio.to_thread(client.show_tenant_quota, ShowTenantQuotaRequest())
    assert quota.absolute.total_instances_used == 2  # the world's two BMSs
    assert quota.absolute.max_total_instances >= 500 + 2  # room for 500 more by default
    assert sim.requests(path_prefix="/v1/")[0]["rate_key"] == "huawei-bms:limits"
    sim.world.catalog.quotas["bms"] = 3
    quota = await asyncio.to_thread(client.show_tenant_quota, ShowTenantQuotaRequest())
    assert (quota.absolute.max_total_instances, quota.absolute.total_instances_used) == (3, 2)


async def test_client_token_makes_a_repeated_create_a_no_op(sim: Sim) -> None:
    ep = await published(sim)
    client = ecs_client(ep)
    body = CreatePostPaidServersRequestBody(server=post_paid(ep["create"]["ecs"], count=2))
    request = CreatePostPaidServersRequest(x_client_token="batch-7", body=body)
    first = await asyncio.to_thread(client.create_post_paid_servers, request)
    again = await asyncio.to_thread(client.create_post_paid_servers, request)
    assert (again.job_id, again.server_ids) == (first.job_id, first.server_ids)
    assert len(sim.world.visible("ecs")) == 3 + 2
