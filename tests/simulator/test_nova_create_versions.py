"""Nova `POST /servers` by microversion, as upstream: `tags` in the body from 2.52 only (a 400
below, the request schema has no `tags`), `metadata` at every microversion (seed 004 §1.4: string
keys and values of at most 255 bytes), kept and shown in the server's body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fleet.simulator.world import OPENSTACK
from fleet.simulator.worldgen import WorldSpec
from tests.simulator.nova_client import Nova
from tests.simulator_fixtures import Sim, SimFactory


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def body(sim: Sim, name: str, **extra: object) -> dict[str, Any]:
    catalog = sim.world.catalog
    flavor = next(f.id for f in sim.world.flavors.values() if f.kind == OPENSTACK)
    server = {
        "name": name,
        "flavorRef": flavor,
        "imageRef": next(iter(catalog.images)),
        "networks": [{"uuid": next(iter(catalog.networks))}],
    }
    return {"server": server | extra}


async def test_create_tags_need_252_and_metadata_is_kept(
    simulator_factory: SimFactory, http: aiohttp.ClientSession
) -> None:
    spec = WorldSpec(speed=0.001, counts={"ecs": 0, "bms": 0, "openstack": 1})
    async with simulator_factory(spec=spec) as sim:
        es = Nova(sim, http, "openstack")
        tagged = body(sim, "a", tags=["fleet-op=x"])
        refused = await es.call("POST", "/servers", json=tagged, version="2.51")
        assert refused.status == 400
        assert "tags" in refused.body["badRequest"]["message"]
        assert (await es.call("POST", "/servers", json=tagged, version="2.52")).status == 202
        meta = body(sim, "b", metadata={"fleet-op": "x", "expires-at": "2030-01-01"})
        made = await es.call("POST", "/servers", json=meta, version="2.1")
        assert made.status == 202
        shown = await es.server(made.body["server"]["id"])
        assert shown["metadata"] == {"fleet-op": "x", "expires-at": "2030-01-01"}
        for bad in ({"k": 1}, {"k": "v" * 256}, {"": "v"}, ["k"]):
            reply = await es.call("POST", "/servers", json=body(sim, "c", metadata=bad))
            assert reply.status == 400, bad


async def test_a_world_at_225_refuses_the_create_microversion_252(
    simulator_factory: SimFactory, http: aiohttp.ClientSession
) -> None:
    spec = WorldSpec(speed=0.001, counts={"ecs": 0, "bms": 0, "openstack": 1}, tag_api=False)
    async with simulator_factory(spec=spec) as sim:
        es = Nova(sim, http, "openstack", version="2.25")
        tagged = body(sim, "a", tags=["fleet-op=x"])
        assert (await es.call("POST", "/servers", json=tagged, version="2.52")).status == 406
        assert (await es.call("POST", "/servers", json=tagged)).status == 400
        meta = body(sim, "b", metadata={"fleet-op": "x"})
        assert (await es.call("POST", "/servers", json=meta)).status == 202
