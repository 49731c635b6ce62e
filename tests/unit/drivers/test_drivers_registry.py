"""The registry maps every provider to its driver, and capabilities are data the planner can read."""

from __future__ import annotations

import aiohttp

from fleet.domain import Action, Provider
from fleet.drivers.base import BudgetUnit, Driver, UnlimitedGate
from fleet.drivers.config import AkSkCredentials, EndpointConfig, PasswordCredentials, Secret
from fleet.drivers.huawei.bms import HuaweiBmsDriver
from fleet.drivers.huawei.ecs import HuaweiEcsDriver
from fleet.drivers.nova.driver import OpenStackDriver
from fleet.drivers.registry import DRIVERS, create_driver

AKSK = AkSkCredentials(ak=Secret("a"), sk=Secret("s"))
PASSWORD = PasswordCredentials(username="u", password=Secret("p"))


def _configs() -> list[EndpointConfig]:
    return [
        EndpointConfig("ecs", Provider.HUAWEI_ECS, AKSK, project_id="p", ecs_url="https://ecs"),
        EndpointConfig(
            "bms",
            Provider.HUAWEI_BMS,
            AKSK,
            project_id="p",
            ecs_url="https://e",
            bms_url="https://b",
        ),
        EndpointConfig("os", Provider.OPENSTACK, PASSWORD, project_name="p", auth_url="https://k"),
        EndpointConfig(
            "es",
            Provider.OPENSTACK,
            PASSWORD,
            project_name="p",
            auth_url="https://k",
            flavour="easystack",
        ),
    ]


async def test_every_provider_has_a_driver() -> None:
    assert set(DRIVERS) == set(Provider)
    async with aiohttp.ClientSession() as session:
        drivers: list[Driver] = [create_driver(c, session, UnlimitedGate()) for c in _configs()]
    kinds = [type(d) for d in drivers]
    assert kinds == [HuaweiEcsDriver, HuaweiBmsDriver, OpenStackDriver, OpenStackDriver]
    assert [d.endpoint for d in drivers] == ["ecs", "bms", "os", "es"]
    ecs, bms, os_, es = drivers
    assert ecs.max_batch(Action.START) == 1000 and ecs.max_batch(Action.DELETE) == 1000
    assert ecs.capabilities.actions[Action.START].counts_servers
    assert ecs.capabilities.budgets["action"][0].unit is BudgetUnit.SERVERS
    assert bms.capabilities.budgets["action"][0].limit == 50
    assert bms.capabilities.budgets["jobs"][0].limit == 2000
    assert Action.DELETE not in bms.capabilities.supported
    assert Action.TAG_ADD in os_.capabilities.supported
    assert Action.TAG_ADD not in es.capabilities.supported
    assert os_.capabilities.budgets["action"][0].limit == 120
    assert all(os_.max_batch(a) == 1 for a in os_.capabilities.supported)
    assert "Secret('***')" in repr(_configs()[0]) and "'s'" not in repr(_configs()[0].credentials)
