"""huaweicloudsdktms's resource-tag batch calls (what Cloud Custodian's tag actions use) against
the simulator, with `GlobalCredentials` that learn the domain id from IAM `GET /v3/auth/domains`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from huaweicloudsdkcore.auth.credentials import GlobalCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdktms.v1 import (
    CreateResourceTagRequest,
    DeleteResourceTagRequest,
    ReqCreateTag,
    ReqDeleteTag,
    TmsClient,
)

from tests.contract.sdk.test_huaweicloud_sdk import published
from tests.simulator_fixtures import Sim, SimFactory


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    # A seed of its own: the SDK caches a domain id per access key for the whole process.
    async with simulator_factory(seed=4242, speed=1e-9, ecs=3, bms=1, openstack=0) as running:
        yield running


async def tms_client(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    ep = await published(sim)
    monkeypatch.setenv("HUAWEICLOUD_SDK_IAM_ENDPOINT", sim.base_url)
    builder = (
        TmsClient.new_builder()
        .with_credentials(GlobalCredentials(ep["ak"], ep["sk"]))
        .with_region(Region("cn-north-4", sim.base_url))
    )
    # Building with a region asks IAM for the domain id: off the event loop that serves it.
    return await asyncio.to_thread(builder.build), ep["project_id"]


def _resources(*ids: str, kind: str = "ecs") -> list[dict[str, str]]:
    return [{"resource_id": i, "resource_type": kind} for i in ids]


async def test_batch_create_and_delete_change_the_ecs_tags(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, project_id = await tms_client(sim, monkeypatch)
    a, b, _ = sim.world.visible("ecs")
    a.tags, b.tags = {"env": "prod"}, {}
    tags = [{"key": "owner", "value": "alice"}, {"key": "env", "value": "test"}]
    body = ReqCreateTag(project_id=project_id, resources=_resources(a.id, b.id), tags=tags)
    created = await asyncio.to_thread(
        client.create_resource_tag, CreateResourceTagRequest(body=body)
    )
    assert created.status_code == 200 and created.failed_resources == []
    assert a.tags == b.tags == {"env": "test", "owner": "alice"}
    assert [e["path"] for e in sim.requests()][:1] == ["/v3/auth/domains"]
    drop = ReqDeleteTag(
        project_id=project_id, resources=_resources(a.id, b.id), tags=[{"key": "owner"}]
    )
    deleted = await asyncio.to_thread(
        client.delete_resource_tag, DeleteResourceTagRequest(body=drop)
    )
    assert deleted.failed_resources == []
    assert a.tags == b.tags == {"env": "test"}
    entry = sim.requests()[-1]
    assert (entry["rate_key"], entry["action"]) == ("huawei-tms:tags", "tms_delete")
    assert entry["server_ids"] == [a.id, b.id]


async def test_resources_that_cannot_take_the_tags_are_listed_as_failed(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, project_id = await tms_client(sim, monkeypatch)
    full, ok, _ = sim.world.visible("ecs")
    full.tags = {f"k{i}": "v" for i in range(10)}
    ok.tags = {}
    missing = "3f0e0d52-0000-4000-8000-000000000003"
    resources = [*_resources(full.id, ok.id, missing), *_resources("vol-1", kind="evs")]
    body = ReqCreateTag(
        project_id=project_id, resources=resources, tags=[{"key": "owner", "value": "bob"}]
    )
    answer = await asyncio.to_thread(
        client.create_resource_tag, CreateResourceTagRequest(body=body)
    )
    failed = {f.resource_id: f.error_code for f in answer.failed_resources}
    assert failed == {full.id: "Ecs.0905", missing: "Ecs.0614", "vol-1": "TMS.0002"}
    assert ok.tags == {"owner": "bob"} and len(full.tags) == 10 and "owner" not in full.tags


async def test_a_bad_batch_is_400_and_changes_nothing(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, project_id = await tms_client(sim, monkeypatch)
    server = sim.world.visible("ecs")[0]
    server.tags = {}
    for project, tags in (("0" * 32, [{"key": "a", "value": "b"}]), (project_id, [])):
        body = ReqCreateTag(project_id=project, resources=_resources(server.id), tags=tags)
        with pytest.raises(ClientRequestException) as caught:
            await asyncio.to_thread(client.create_resource_tag, CreateResourceTagRequest(body=body))
        assert (caught.value.status_code, caught.value.error_code) == (400, "TMS.0002")
    assert server.tags == {}
