"""Huawei native 1D tags: mapped onto the world's 2D tags, reserved kind tags, microversion 2.26."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.simulator.nova_client import Nova, slow_sim
from tests.simulator_fixtures import Sim, SimFactory


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    async with slow_sim(simulator_factory, ecs=3, bms=2, openstack=2) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def ecs(sim: Sim, tags: dict[str, str] | None = None) -> str:
    server = sim.world.servers[sim.servers("ecs")[0]]
    server.tags = dict(tags or {})
    server.status, server.vm_state, server.power_state = "ACTIVE", "active", 1
    return server.id


async def test_list_replace_and_clear(sim: Sim, http: aiohttp.ClientSession) -> None:
    hw = Nova(sim, http, "huawei")
    sid = ecs(sim, {"env": "prod", "pinned": ""})
    listed = await hw.call("GET", f"/servers/{sid}/tags")
    assert listed.body == {"tags": ["env=prod", "pinned", "__type_virtual"]}
    assert listed.headers["Connection"] == "close"
    replaced = await hw.call("PUT", f"/servers/{sid}/tags", json={"tags": ["a=1", "b"]})
    assert replaced.status == 200
    assert replaced.body == {"tags": ["a=1", "b", "__type_virtual"]}
    assert sim.world.servers[sid].tags == {"a": "1", "b": ""}
    assert (await hw.call("DELETE", f"/servers/{sid}/tags")).status == 204
    assert sim.world.servers[sid].tags == {}
    assert (await hw.server(sid))["tags"] == ["__type_virtual"]


async def test_single_tag_add_check_delete(sim: Sim, http: aiohttp.ClientSession) -> None:
    hw = Nova(sim, http, "huawei")
    sid = ecs(sim, {"env": "dev"})
    added = await hw.call("PUT", f"/servers/{sid}/tags/team=alpha")
    assert added.status == 201
    assert added.body is None  # webob's HTML page by default
    assert (await hw.call("PUT", f"/servers/{sid}/tags/team=alpha")).status == 204
    json_added = await hw.call(
        "PUT", f"/servers/{sid}/tags/role", headers={"Accept": "application/json"}
    )
    assert json_added.status == 201 and json_added.body["code"] == "201 Created"
    overwrite = await hw.call("PUT", f"/servers/{sid}/tags/env=prod")
    assert overwrite.status == 201
    assert sim.world.servers[sid].tags == {"env": "prod", "team": "alpha", "role": ""}
    assert (await hw.call("GET", f"/servers/{sid}/tags/env=prod")).status == 204
    assert (await hw.call("GET", f"/servers/{sid}/tags/env=dev")).status == 404
    assert (await hw.call("DELETE", f"/servers/{sid}/tags/env=dev")).status == 404
    assert (await hw.call("DELETE", f"/servers/{sid}/tags/env=prod")).status == 204
    assert sim.world.servers[sid].tags == {"team": "alpha", "role": ""}
    log = sim.requests(rate_key="huawei-nova:tags")
    assert len(log) == 8 and all(e["server_ids"] == [sid] for e in log)


async def test_reserved_tags_stay(sim: Sim, http: aiohttp.ClientSession) -> None:
    hw = Nova(sim, http, "huawei")
    bms = sim.servers("bms")[0]
    assert (await hw.call("GET", f"/servers/{bms}/tags")).body["tags"][-1] == "__type_baremetal"
    refused = await hw.call("DELETE", f"/servers/{bms}/tags/__type_baremetal")
    assert refused.status == 400
    await hw.call("PUT", f"/servers/{bms}/tags", json={"tags": ["x=1"]})
    assert (await hw.call("GET", f"/servers/{bms}/tags")).body["tags"] == [
        "x=1",
        "__type_baremetal",
    ]


@pytest.mark.parametrize(
    "tags",
    [
        ["a=1", "a=2"],
        [""],
        ["x" * 81],
        ["a,b"],
        [f"t{i}" for i in range(50)],
        "not-a-list",
    ],
    ids=["two-values", "empty", "too-long", "comma", "fifty-one-with-reserved", "shape"],
)
async def test_invalid_tag_sets_are_400_and_change_nothing(
    sim: Sim, http: aiohttp.ClientSession, tags: object
) -> None:
    hw = Nova(sim, http, "huawei")
    sid = ecs(sim, {"keep": "me"})
    reply = await hw.call("PUT", f"/servers/{sid}/tags", json={"tags": tags})
    assert reply.status == 400 and "badRequest" in reply.body
    assert sim.world.servers[sid].tags == {"keep": "me"}


async def test_tags_need_2_26_and_a_settled_server(sim: Sim, http: aiohttp.ClientSession) -> None:
    hw = Nova(sim, http, "huawei")
    sid = ecs(sim, {"env": "prod"})
    assert (await hw.call("GET", f"/servers/{sid}/tags", version="2.25")).status == 404
    assert "tags" not in await Nova(sim, http, "huawei", version="2.25").server(sid)
    assert (await hw.action(sid, {"os-stop": {}})).status == 202
    busy = await hw.call("PUT", f"/servers/{sid}/tags/new")
    assert busy.status == 409
    assert (await hw.call("GET", f"/servers/{sid}/tags")).status == 200
    sim.advance(25)
    assert (await hw.call("PUT", f"/servers/{sid}/tags/new")).status == 201


async def test_easystack_has_no_tag_api_but_shows_tags(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    es = Nova(sim, http, "openstack")
    sid = sim.servers("openstack")[0]
    sim.world.servers[sid].tags = {"env": "prod"}
    assert (await es.call("PUT", f"/servers/{sid}/tags/x")).status in (404, 405)
    assert (await es.call("GET", f"/servers/{sid}/tags")).status in (404, 405)
    assert (await es.server(sid))["tags"] == ["env=prod"]
    assert "tags" not in await Nova(sim, http, "openstack", version="2.25").server(sid)
