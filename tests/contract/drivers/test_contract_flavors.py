"""`Driver.flavors()` of every dialect against the simulator: the flavor ids of its kind, read
through the gate under its own API class (and the simulator's `...:flavors` rate key), paged to the
end, cached, and a failure that is not cached."""

from __future__ import annotations

import asyncio

import pytest

from fleet.drivers.base import FlavorCache
from fleet.drivers.errors import Transient
from tests.contract.drivers.conftest import MakeBms, MakeEcs, MakeOs, RecordingGate, calls
from tests.simulator_fixtures import Sim


def kind_flavors(sim: Sim, kind: str) -> frozenset[str]:
    return frozenset(f.id for f in sim.world.flavors.values() if f.kind == kind)


async def test_ecs_lists_the_native_flavors_without_the_baremetal_ones(
    sim: Sim, make_ecs: MakeEcs, gate: RecordingGate
) -> None:
    driver = make_ecs(page_size=4)
    found = await driver.flavors()
    assert found == kind_flavors(sim, "ecs") and found
    assert not any(f.startswith("physical.") for f in found)
    pages = calls(sim, "GET", "/flavors/detail")
    assert len(pages) == 2  # 6 native flavors (ECS and BMS), 4 a page
    assert all(str(p["path"]).startswith("/v2.1/") for p in pages)
    assert {p["rate_key"] for p in pages} == {"huawei-nova:flavors"}
    assert "nova_flavors" in gate.classes()
    assert "nova_flavors" in driver.capabilities.budgets


async def test_bms_lists_the_baremetal_flavors(
    sim: Sim, make_bms: MakeBms, gate: RecordingGate
) -> None:
    driver = make_bms()
    assert await driver.flavors() == kind_flavors(sim, "bms")
    assert {p["rate_key"] for p in calls(sim, "GET", "/flavors/detail")} == {"huawei-nova:flavors"}
    assert "nova_flavors" in gate.classes()


@pytest.mark.parametrize("flavour", ["easystack", "openstack"])
async def test_openstack_lists_flavor_ids_not_names(
    sim: Sim, make_os: MakeOs, gate: RecordingGate, flavour: str
) -> None:
    driver = make_os(flavour=flavour, page_size=3)
    found = await driver.flavors()
    assert found == kind_flavors(sim, "openstack")
    assert "m1.small" not in found  # a name: Nova's flavorRef is an id
    pages = calls(sim, "GET", "/compute/v2.1/flavors/detail")
    assert len(pages) == 2 and {p["rate_key"] for p in pages} == {"openstack:flavors"}
    assert "flavors" in gate.classes()
    assert driver.capabilities.budgets["flavors"][0].limit == 60


async def test_the_list_is_cached_per_driver(sim: Sim, make_ecs: MakeEcs, make_os: MakeOs) -> None:
    ecs, es = make_ecs(), make_os()
    for _ in range(3):
        await ecs.flavors()
        await es.flavors()
    assert len(calls(sim, "GET", "/flavors/detail")) == 2
    await make_ecs().flavors()  # another driver, its own cache
    assert len(calls(sim, "GET", "/flavors/detail")) == 3


async def test_concurrent_callers_share_one_fetch(sim: Sim, make_os: MakeOs) -> None:
    driver = make_os()
    lists = await asyncio.gather(*(driver.flavors() for _ in range(5)))
    assert all(found == kind_flavors(sim, "openstack") for found in lists)
    assert len(calls(sim, "GET", "/flavors/detail")) == 1


async def test_a_failed_fetch_raises_and_is_not_cached(sim: Sim, make_os: MakeOs) -> None:
    driver = make_os()
    sim.fault(kind="error_burst", match="openstack:flavors", count=1, status=500)
    with pytest.raises(Transient):
        await driver.flavors()
    assert await driver.flavors() == kind_flavors(sim, "openstack")


async def test_the_cache_expires() -> None:
    now = [0.0]
    cache = FlavorCache(60.0, clock=lambda: now[0])
    fetched: list[int] = []

    async def fetch() -> frozenset[str]:
        fetched.append(1)
        return frozenset({str(len(fetched))})

    assert await cache.get(fetch) == {"1"}
    now[0] = 59.0
    assert await cache.get(fetch) == {"1"}
    now[0] = 60.0
    assert await cache.get(fetch) == {"2"}
