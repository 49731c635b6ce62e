"""The official Huawei Cloud SDK clients (huaweicloudsdkecs, huaweicloudsdkbms) against the simulator.

The clients are configured only from `GET /_sim/endpoints` (what the README tells users to do),
sign every call with AK/SK, and run in a worker thread (they are synchronous) while the simulator
serves in the test's event loop. Simulated time is frozen and moved by hand between job polls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from huaweicloudsdkbms.v1 import (
    BatchStartBaremetalServersRequest,
    BatchStopBaremetalServersRequest,
    BmsClient,
    OsStartBody,
    OsStopBody,
    OsStopBodyType,
    ServersList,
    ShowJobInfosRequest,
    StartServersInfo,
)
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkecs.v2 import (
    BatchStartServersOption,
    BatchStartServersRequest,
    BatchStartServersRequestBody,
    BatchStopServersOption,
    BatchStopServersRequest,
    BatchStopServersRequestBody,
    EcsClient,
    ServerId,
    ShowJobRequest,
)

from tests.simulator_fixtures import Sim, SimFactory


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    async with simulator_factory(speed=1e-9, ecs=4, bms=3, openstack=0) as running:
        yield running


async def published(sim: Sim) -> dict[str, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{sim.base_url}/_sim/endpoints") as resp,
    ):
        huawei: dict[str, str] = (await resp.json())["huawei"]
        return huawei


def ecs_client(ep: dict[str, str], sk: str | None = None) -> Any:
    credentials = BasicCredentials(ep["ak"], sk or ep["sk"], ep["project_id"])
    return (
        EcsClient.new_builder()
        .with_credentials(credentials)
        .with_endpoints([ep["ecs_url"]])
        .build()
    )


def bms_client(ep: dict[str, str]) -> Any:
    credentials = BasicCredentials(ep["ak"], ep["sk"], ep["project_id"])
    return (
        BmsClient.new_builder()
        .with_credentials(credentials)
        .with_endpoints([ep["bms_url"]])
        .build()
    )


async def poll_until_done(sim: Sim, show: Callable[[], Any], step: float) -> Any:
    """Call `show` (in a thread), moving simulated time on by `step`, until the job has ended."""
    for _ in range(20):
        job = await asyncio.to_thread(show)
        if job.status in ("SUCCESS", "FAIL"):
            return job
        sim.advance(step)
    raise AssertionError("the job never ended")


def set_status(sim: Sim, kind: str, status: str) -> list[str]:
    servers = sim.world.visible(kind)
    for s in servers:
        s.status, s.vm_state, s.power_state = (
            ("ACTIVE", "active", 1) if status == "ACTIVE" else ("SHUTOFF", "stopped", 4)
        )
    return [s.id for s in servers]


async def test_ecs_batch_stop_then_start_with_jobs_polled_to_success(sim: Sim) -> None:
    ep = await published(sim)
    client = ecs_client(ep)
    ids = set_status(sim, "ecs", "ACTIVE")
    stop = BatchStopServersRequest(
        body=BatchStopServersRequestBody(
            os_stop=BatchStopServersOption(servers=[ServerId(id=i) for i in ids], type="SOFT")
        )
    )
    stopped = await asyncio.to_thread(client.batch_stop_servers, stop)
    assert stopped.status_code == 200 and stopped.job_id
    job = await poll_until_done(
        sim, lambda: client.show_job(ShowJobRequest(job_id=stopped.job_id)), 5.0
    )
    assert job.status == "SUCCESS" and job.entities.sub_jobs_total == len(ids)
    assert sorted(s.entities.server_id for s in job.entities.sub_jobs) == sorted(ids)
    assert all(s.status == "SUCCESS" for s in job.entities.sub_jobs)
    assert {sim.world.servers[i].status for i in ids} == {"SHUTOFF"}
    start = BatchStartServersRequest(
        body=BatchStartServersRequestBody(
            os_start=BatchStartServersOption(servers=[ServerId(id=i) for i in ids])
        )
    )
    started = await asyncio.to_thread(client.batch_start_servers, start)
    job = await poll_until_done(
        sim, lambda: client.show_job(ShowJobRequest(job_id=started.job_id)), 5.0
    )
    assert job.status == "SUCCESS" and len(job.entities.sub_jobs) == len(ids)
    assert {sim.world.servers[i].status for i in ids} == {"ACTIVE"}
    signed = sim.requests(rate_key="huawei-ecs:action")
    assert [e["action"] for e in signed] == ["stop", "start"]


async def test_ecs_client_with_a_wrong_secret_key_gets_401(sim: Sim) -> None:
    ep = await published(sim)
    client = ecs_client(ep, sk="wrong-secret-key")
    ids = set_status(sim, "ecs", "ACTIVE")[:1]
    request = BatchStopServersRequest(
        body=BatchStopServersRequestBody(
            os_stop=BatchStopServersOption(servers=[ServerId(id=ids[0])])
        )
    )
    with pytest.raises(ClientRequestException) as caught:
        await asyncio.to_thread(client.batch_stop_servers, request)
    assert caught.value.status_code == 401
    assert caught.value.error_code == "APIGW.0301"
    assert caught.value.request_id
    assert sim.world.jobs == {} and sim.world.servers[ids[0]].task_state is None


async def test_ecs_client_without_project_id_finds_it_through_iam(sim: Sim) -> None:
    """With a region instead of a project id the SDK asks `GET /v3/projects?name=` (signed)."""
    ep = await published(sim)
    credentials = BasicCredentials(ep["ak"], ep["sk"]).with_iam_endpoint(ep["iam_url"])
    builder = (
        EcsClient.new_builder()
        .with_credentials(credentials)
        .with_region(Region(ep["region"], ep["ecs_url"]))
    )
    client = await asyncio.to_thread(builder.build)  # build() calls IAM: not in the loop thread
    assert [(e["path"], e["query"]) for e in sim.requests()] == [
        ("/v3/projects", f"name={ep['region']}")
    ]
    with pytest.raises(ClientRequestException) as caught:
        await asyncio.to_thread(client.show_job, ShowJobRequest(job_id="0" * 32))
    assert (caught.value.status_code, caught.value.error_code) == (400, "Common.0011")
    assert sim.requests()[-1]["path"] == f"/v1/{ep['project_id']}/jobs/{'0' * 32}"


async def test_bms_batch_stop_and_start_then_the_job(sim: Sim) -> None:
    ep = await published(sim)
    client = bms_client(ep)
    ids = set_status(sim, "bms", "ACTIVE")
    servers = [ServersList(id=i) for i in ids]
    stop = BatchStopBaremetalServersRequest(
        body=OsStopBody(os_stop=OsStopBodyType(type="HARD", servers=servers))
    )
    stopped = await asyncio.to_thread(client.batch_stop_baremetal_servers, stop)
    assert stopped.job_id
    job = await poll_until_done(
        sim, lambda: client.show_job_infos(ShowJobInfosRequest(job_id=stopped.job_id)), 5.0
    )
    assert job.status == "SUCCESS" and job.entities.sub_jobs_total == len(ids)
    assert {s.entities.server_id for s in job.entities.sub_jobs} == set(ids)
    assert {sim.world.servers[i].status for i in ids} == {"SHUTOFF"}
    start = BatchStartBaremetalServersRequest(
        body=OsStartBody(os_start=StartServersInfo(servers=servers))
    )
    started = await asyncio.to_thread(client.batch_start_baremetal_servers, start)
    job = await poll_until_done(
        sim, lambda: client.show_job_infos(ShowJobInfosRequest(job_id=started.job_id)), 5.0
    )
    assert job.status == "SUCCESS"
    assert {sim.world.servers[i].status for i in ids} == {"ACTIVE"}
    assert len(sim.requests(rate_key="huawei-bms:action")) == 2
    assert sim.requests(rate_key="huawei-bms:jobs")
