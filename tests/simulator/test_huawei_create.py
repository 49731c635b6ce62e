"""The Huawei creates over raw HTTP: field validation naming the field, name rules, the rate key,
what `/_sim/endpoints` publishes, and a world file's quotas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fleet.simulator.worldgen import build_world, load_spec
from tests.simulator.huawei_client import Huawei, huawei
from tests.simulator_fixtures import SimFactory

ECS_CREATE = "/v1/{pid}/cloudservers"


@pytest.fixture
async def hw(simulator_factory: SimFactory) -> AsyncIterator[Huawei]:
    async with simulator_factory(speed=1e-9, ecs=2, bms=1, openstack=1) as sim, huawei(sim) as c:
        yield c


async def needs(hw: Huawei) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{hw.sim.base_url}/_sim/endpoints") as resp,
    ):
        body: dict[str, Any] = await resp.json()
    return body


def ecs_body(need: dict[str, str], **over: object) -> dict[str, object]:
    server: dict[str, object] = {
        "name": "web",
        "flavorRef": need["flavor"],
        "imageRef": need["image"],
        "vpcid": need["vpc"],
        "nics": [{"subnet_id": need["network"]}],
        "root_volume": {"volumetype": "SSD"},
        **over,
    }
    return {"server": server}


async def test_endpoints_publish_what_a_create_needs(hw: Huawei) -> None:
    ep = await needs(hw)
    world = hw.sim.world
    ecs, bms, nova = (
        ep["huawei"]["create"]["ecs"],
        ep["huawei"]["create"]["bms"],
        ep["openstack"]["create"],
    )
    assert set(ecs) == set(bms) == {"flavor", "image", "network", "vpc", "availability_zone"}
    assert set(nova) == {"flavor", "image", "network", "availability_zone"}
    assert world.flavors[ecs["flavor"]].kind == "ecs" and world.flavors[bms["flavor"]].kind == "bms"
    assert world.catalog.subnets[ecs["network"]] == ecs["vpc"]
    assert nova["network"] in world.catalog.networks
    assert world.flavors[nova["flavor"]].kind == "openstack"


@pytest.mark.parametrize(
    ("over", "code", "field"),
    [
        ({"name": ""}, "Ecs.0005", "server.name"),
        ({"name": "bad name!"}, "Ecs.0005", "server.name"),
        ({"name": "x" * 60, "count": 2}, "Ecs.0005", "59"),
        ({"root_volume": None}, "Ecs.0005", "server.root_volume"),
        ({"nics": []}, "Ecs.0005", "server.nics"),
        ({"count": 0}, "Ecs.0005", "server.count"),
        ({"nics": [{"subnet_id": "nope"}]}, "Ecs.0038", "nope"),
        ({"vpcid": "other-vpc"}, "Ecs.0064", "other-vpc"),
        ({"availability_zone": "az9"}, "Ecs.0005", "availability_zone"),
        ({"server_tags": [{"key": "a/b", "value": ""}]}, "Ecs.0906", "a/b"),
    ],
)
async def test_ecs_create_refusals_name_the_field(
    hw: Huawei, over: dict[str, object], code: str, field: str
) -> None:
    need = (await needs(hw))["huawei"]["create"]["ecs"]
    before = len(hw.sim.world.servers)
    answer = await hw.call("POST", ECS_CREATE, ecs_body(need, **over))
    assert (answer.status, answer.code) == (400, code), answer.body
    assert field in answer.body["error"]["message"]
    assert len(hw.sim.world.servers) == before


async def test_ecs_create_is_counted_on_its_rate_key_and_logged(hw: Huawei) -> None:
    need = (await needs(hw))["huawei"]["create"]["ecs"]
    answer = await hw.call("POST", ECS_CREATE, ecs_body(need, count=1))
    assert answer.status == 200 and set(answer.body) == {"job_id", "serverIds"}
    [sid] = answer.body["serverIds"]
    assert hw.sim.world.servers[sid].name == "web"  # one server: no suffix
    entry = hw.sim.requests(path_prefix="/v1/")[-1]
    assert (entry["rate_key"], entry["action"]) == ("huawei-ecs:create", "create")


async def test_bms_create_is_limited_to_50_requests_a_minute(hw: Huawei) -> None:
    limits = hw.sim.ctx.limits.limits["huawei-bms:create"]
    assert (limits.limit, limits.period, limits.unit) == (50, 60.0, "requests")


def test_world_file_sets_quotas(tmp_path: Path) -> None:
    path = tmp_path / "world.toml"
    path.write_text("[generate]\necs = 3\nbms = 0\nopenstack = 0\n[quotas]\necs = 5\n")
    world = build_world(load_spec(path))
    assert world.catalog.quotas["ecs"] == 5
    assert world.catalog.quotas["openstack"] >= 1000 and world.catalog.quotas["bms"] >= 1000
    bad = tmp_path / "bad.toml"
    bad.write_text("[quotas]\nvm = 5\n")
    with pytest.raises(ValueError, match="quotas"):
        load_spec(bad)
    bad.write_text('[quotas]\necs = "many"\n')
    with pytest.raises(ValueError, match=r"quotas\.ecs"):
        load_spec(bad)
