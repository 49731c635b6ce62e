"""Huawei native 1D tags: mapped onto the world's 2D tags, reserved kind tags, microversion 2.26."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from fleet.simulator.worldgen import WorldSpec, load_spec
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


async def test_easystack_serves_the_tag_api_as_upstream_nova(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    es = Nova(sim, http, "openstack")
    sid = sim.servers("openstack")[0]
    sim.world.servers[sid].tags = {"env": "prod"}
    assert (await es.call("GET", f"/servers/{sid}/tags")).body == {"tags": ["env=prod"]}
    assert (await es.call("PUT", f"/servers/{sid}/tags/owner=ops")).status == 201
    assert (await es.call("GET", f"/servers/{sid}/tags/owner=ops")).status == 204
    assert (await es.server(sid))["tags"] == ["env=prod", "owner=ops"]
    assert (await es.call("PUT", f"/servers/{sid}/tags/{'x' * 61}")).status == 400
    assert (await es.call("DELETE", f"/servers/{sid}/tags/env=prod")).status == 204
    assert sim.world.servers[sid].tags == {"owner": "ops"}
    assert "tags" not in await Nova(sim, http, "openstack", version="2.25").server(sid)


async def test_an_easystack_world_without_the_tag_api_never_advertises_it(
    simulator_factory: SimFactory, http: aiohttp.ClientSession
) -> None:
    spec = WorldSpec(speed=0.001, counts={"ecs": 0, "bms": 0, "openstack": 2}, tag_api=False)
    async with simulator_factory(spec=spec) as sim:
        es = Nova(sim, http, "openstack", version="2.25")
        sid = sim.servers("openstack")[0]
        async with http.get(f"{sim.base_url}/compute/v2.1") as resp:
            assert (await resp.json())["version"]["version"] == "2.25"
        assert (await es.call("GET", "/servers", version="2.26")).status == 406
        assert (await es.call("GET", f"/servers/{sid}/tags")).status in (404, 405)
        assert "tags" not in await es.server(sid)
        every = await es.call("GET", "/servers", params={"tags": "nothing-has-this"})
        assert len(every.body["servers"]) == 2  # ignored, as Nova ignores it below 2.26


def test_the_world_file_says_whether_easystack_has_the_tag_api(tmp_path: Path) -> None:
    world = tmp_path / "world.toml"
    world.write_text("tag_api = false\n", encoding="utf-8")
    assert load_spec(world).tag_api is False
    assert load_spec(None).tag_api is True
    world.write_text('tag_api = "no"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="tag_api"):
        load_spec(world)
