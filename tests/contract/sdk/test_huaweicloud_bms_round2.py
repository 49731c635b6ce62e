"""The official clients on the BMS calls beyond batch actions, on unserved routes, and on IAM `/v3`.

huaweicloudsdkbms: flavors, the v1 list's `count`, the v1.1 list, server tags and batch delete;
huaweicloudsdkecs and huaweicloudsdkbms: a call to an API the simulator does not serve fails with
the API gateway's code, not the bare status; keystoneauth: IAM's version discovery and tokens.
The clients are configured only from `GET /_sim/endpoints` and run in worker threads (they are
synchronous) while the simulator serves in the test's event loop; simulated time is frozen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from huaweicloudsdkbms.v1 import (
    BaremetalServerTag,
    BatchCreateBaremetalServerTagsRequest,
    BatchCreateBaremetalServerTagsRequestBody,
    BatchDeleteBaremetalServerTagsRequest,
    BatchDeleteBaremetalServerTagsRequestBody,
    ChangeBaremetalNameBody,
    ChangeBaremetalNameServer,
    ChangeBaremetalServerNameRequest,
    DeleteBaremetalBody,
    DeleteBaremetalServerRequest,
    ListBaremetalFlavorDetailExtendsRequest,
    ListBareMetalServersDetailRequest,
    ListBareMetalServersRequest,
    ServersList,
    ShowBaremetalServerTagsRequest,
    ShowJobInfosRequest,
)
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkecs.v2 import ListServerInterfacesRequest, NovaListKeypairsRequest
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import generic

from tests.contract.sdk.test_huaweicloud_sdk import (
    bms_client,
    ecs_client,
    poll_until_done,
    published,
)
from tests.simulator_fixtures import Sim, SimFactory

BMS_COUNT = 5


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    async with simulator_factory(speed=1e-9, ecs=2, bms=BMS_COUNT, openstack=1) as running:
        yield running


async def call(fn: Any, request: Any) -> Any:
    return await asyncio.to_thread(fn, request)


async def refused(fn: Any, request: Any) -> ClientRequestException:
    with pytest.raises(ClientRequestException) as caught:
        await call(fn, request)
    return caught.value


async def test_bms_flavors_answer_the_sdk_shape_under_their_own_rate_key(sim: Sim) -> None:
    client = bms_client(await published(sim))
    answer = await call(
        client.list_baremetal_flavor_detail_extends, ListBaremetalFlavorDetailExtendsRequest()
    )
    assert answer.status_code == 200
    wanted = {f.id for f in sim.world.flavors.values() if f.kind == "bms"}
    assert {f.id for f in answer.flavors} == wanted
    medium = next(f for f in answer.flavors if f.id == "physical.s4.medium")
    assert (medium.vcpus, medium.ram, medium.disk) == ("32", 196608, "1600")
    assert medium.os_extra_specs.resource_type == "ironic"
    assert medium.os_extra_specs.capabilitiesboard_type == "s4m"
    assert medium.os_flavor_accessis_public is True and medium.links[0].rel == "self"
    zone = sim.world.visible("bms")[0].availability_zone
    in_zone = await call(
        client.list_baremetal_flavor_detail_extends,
        ListBaremetalFlavorDetailExtendsRequest(availability_zone=zone),
    )
    assert {f.id for f in in_zone.flavors} == wanted
    nowhere = await call(
        client.list_baremetal_flavor_detail_extends,
        ListBaremetalFlavorDetailExtendsRequest(availability_zone="no-such-zone"),
    )
    assert nowhere.flavors == []
    logged = sim.requests(rate_key="huawei-bms:flavors")
    assert len(logged) == 3 and {e["status"] for e in logged} == {200}
    assert sim.ctx.limits.limits["huawei-bms:flavors"].limit == 500  # seed 000, Table 2


async def test_bms_list_count_is_the_total_not_the_page_size(sim: Sim) -> None:
    client = bms_client(await published(sim))
    first = await call(client.list_bare_metal_servers, ListBareMetalServersRequest(limit=2))
    assert len(first.servers) == 2 and first.count == BMS_COUNT
    last = await call(
        client.list_bare_metal_servers, ListBareMetalServersRequest(limit=2, offset=3)
    )
    assert len(last.servers) == 1 and last.count == BMS_COUNT
    all_ids = [s.id for s in first.servers] + [s.id for s in last.servers]
    assert len(set(all_ids)) == 3


async def test_bms_v11_list_answers_server_list_details(sim: Sim) -> None:
    client = bms_client(await published(sim))
    page = await call(
        client.list_bare_metal_servers_detail, ListBareMetalServersDetailRequest(limit=3, offset=1)
    )
    assert page.status_code == 200 and len(page.servers) == 3
    world = {s.id: s for s in sim.world.visible("bms")}
    for server in page.servers:
        simulated = world[server.id]
        assert (server.name, server.status) == (simulated.name, simulated.status)
        assert server.flavor.id == simulated.flavor_id and isinstance(server.flavor.vcpus, int)
        assert server.availability_zone == simulated.availability_zone
        assert server.in_recycle_bin is False
    rest = await call(
        client.list_bare_metal_servers_detail, ListBareMetalServersDetailRequest(limit=3, offset=2)
    )
    assert len(rest.servers) == BMS_COUNT - 3
    assert [e["rate_key"] for e in sim.requests()] == ["huawei-bms:detail-v1.1"] * 2


def tags_body(action: str, **tags: str) -> Any:
    items = [BaremetalServerTag(key=k, value=v) for k, v in tags.items()]
    if action == "create":
        return BatchCreateBaremetalServerTagsRequestBody(action="create", tags=items)
    return BatchDeleteBaremetalServerTagsRequestBody(action="delete", tags=items)


async def test_bms_server_tags_create_show_filter_and_delete(sim: Sim) -> None:
    client = bms_client(await published(sim))
    for server in sim.world.visible("bms"):
        server.tags.clear()
    sid = sim.servers("bms")[0]
    create = BatchCreateBaremetalServerTagsRequest(
        server_id=sid, body=tags_body("create", env="prod", team="db")
    )
    assert (await call(client.batch_create_baremetal_server_tags, create)).status_code == 204
    shown = await call(client.show_baremetal_server_tags, ShowBaremetalServerTagsRequest(sid))
    assert {(t.key, t.value) for t in shown.tags} == {("env", "prod"), ("team", "db")}
    tagged = await call(
        client.list_bare_metal_servers, ListBareMetalServersRequest(tags="env=prod")
    )
    assert [s.id for s in tagged.servers] == [sid] and tagged.count == 1
    delete = BatchDeleteBaremetalServerTagsRequest(server_id=sid, body=tags_body("delete", env=""))
    assert (await call(client.batch_delete_baremetal_server_tags, delete)).status_code == 204
    assert sim.world.servers[sid].tags == {"team": "db"}
    actions = [e["action"] for e in sim.requests(rate_key="huawei-bms:tags")]
    assert actions == ["tags_create", "tags_delete"]
    assert [e["action"] for e in sim.requests(rate_key="huawei-bms:query")] == ["tags"]


async def test_bms_server_tags_keep_the_bms_rules(sim: Sim) -> None:
    client = bms_client(await published(sim))
    sid = sim.servers("bms")[0]
    sim.world.servers[sid].tags = {f"k{i}": "v" for i in range(9)}
    tenth = BatchCreateBaremetalServerTagsRequest(sid, tags_body("create", extra="x"))
    assert (await refused(client.batch_create_baremetal_server_tags, tenth)).error_code == (
        "Ecs.0905"
    )
    slash = BatchCreateBaremetalServerTagsRequest(sid, tags_body("create", k0="a/b"))
    assert (await refused(client.batch_create_baremetal_server_tags, slash)).error_code == (
        "Ecs.0907"
    )
    assert sim.world.servers[sid].tags == {f"k{i}": "v" for i in range(9)}
    missing = await refused(
        client.show_baremetal_server_tags, ShowBaremetalServerTagsRequest("no-such-bms")
    )
    assert (missing.status_code, missing.error_code) == (404, "Ecs.0114")


async def test_bms_batch_delete_runs_a_job_and_the_servers_leave_the_list(sim: Sim) -> None:
    client = bms_client(await published(sim))
    gone = sim.servers("bms")[:2]
    request = DeleteBaremetalServerRequest(
        body=DeleteBaremetalBody(servers=[ServersList(id=i) for i in gone], delete_volume=True)
    )
    answer = await call(client.delete_baremetal_server, request)
    assert answer.status_code == 200 and answer.job_id
    assert {sim.world.servers[i].task_state for i in gone} == {"deleting"}
    job = await poll_until_done(
        sim, lambda: client.show_job_infos(ShowJobInfosRequest(job_id=answer.job_id)), 5.0
    )
    assert job.status == "SUCCESS" and {s.entities.server_id for s in job.entities.sub_jobs} == set(
        gone
    )
    left = await call(client.list_bare_metal_servers, ListBareMetalServersRequest())
    assert left.count == BMS_COUNT - 2 and not {s.id for s in left.servers} & set(gone)
    again = await refused(client.delete_baremetal_server, request)
    assert (again.status_code, again.error_code) == (404, "Ecs.0114")
    assert [e["rate_key"] for e in sim.requests(path_prefix="/v1/")][:1] == ["huawei-bms:delete"]


# The SDK marks its Nova methods deprecated (it warns on every call); the call is still its own.
@pytest.mark.filterwarnings(
    "ignore:Method 'nova_list_keypairs' of EcsClient is deprecated:DeprecationWarning"
)
async def test_unserved_huawei_apis_fail_with_the_gateway_code(sim: Sim) -> None:
    ep = await published(sim)
    ecs, bms = ecs_client(ep), bms_client(ep)
    sid = sim.servers("ecs")[0]
    unknown = await refused(ecs.list_server_interfaces, ListServerInterfacesRequest(sid))
    assert (unknown.status_code, unknown.error_code) == (404, "APIGW.0101")
    assert unknown.error_msg.startswith("The API does not exist")
    assert unknown.request_id and sim.requests()[-1]["request_id"] == unknown.request_id
    nova = await refused(ecs.nova_list_keypairs, NovaListKeypairsRequest())
    assert (nova.status_code, nova.error_code) == (404, "APIGW.0101")
    rename = ChangeBaremetalServerNameRequest(
        server_id=sim.servers("bms")[0],
        body=ChangeBaremetalNameBody(server=ChangeBaremetalNameServer(name="renamed")),
    )
    method = await refused(bms.change_baremetal_server_name, rename)
    assert (method.status_code, method.error_code) == (405, "APIGW.0101")
    assert {e["dialect"] for e in sim.requests()} == {"huawei"}


def keystone_session(sim: Sim, ep: dict[str, str]) -> ks_session.Session:
    auth = generic.Password(
        auth_url=f"{ep['iam_url']}/v3",
        username=ep["username"],
        password=ep["password"],
        user_domain_name=ep["domain_name"],
        project_id=ep["project_id"],
    )
    return ks_session.Session(auth=auth)


async def test_keystoneauth_discovers_huawei_iam_v3_without_falling_back(
    sim: Sim, caplog: pytest.LogCaptureFixture
) -> None:
    ep = await published(sim)
    session = keystone_session(sim, ep)
    with caplog.at_level(logging.WARNING, logger="keystoneauth"):
        token = await asyncio.to_thread(session.get_token)
    assert token and token in sim.ctx.tokens
    assert not [r for r in caplog.records if "discover" in r.getMessage().lower()]
    assert [(e["method"], e["path"], e["status"]) for e in sim.requests()] == [
        ("GET", "/v3", 200),
        ("POST", "/v3/auth/tokens", 201),
    ]
    async with aiohttp.ClientSession() as http, http.get(f"{sim.base_url}/v3/") as resp:
        version = (await resp.json())["version"]
    assert version["id"] == "v3.6" and version["status"] == "stable"
    assert version["links"] == [{"rel": "self", "href": f"{sim.base_url}/v3/"}]
    assert version["media-types"][0]["type"] == "application/vnd.openstack.identity-v3+json"


async def test_unserved_openstack_paths_keep_nova_and_keystone_shapes(sim: Sim) -> None:
    session = ks_session.Session()
    with pytest.raises(ks_exceptions.NotFound) as caught:
        await asyncio.to_thread(session.get, f"{sim.base_url}/identity/v3/no-such-thing")
    assert caught.value.message.startswith("The resource could not be found. (HTTP 404)")
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{sim.base_url}/compute/v2.1/no-such-thing") as missing,
        http.put(f"{sim.base_url}/compute/v2.1/servers/detail") as method,
    ):
        assert missing.status == 404 and await missing.json() == {
            "itemNotFound": {"code": 404, "message": "The resource could not be found."}
        }
        assert method.status == 405 and (await method.json())["badMethod"]["code"] == 405
        assert "GET" in method.headers["Allow"]
    assert {e["dialect"] for e in sim.requests()} == {"keystone", "openstack"}
