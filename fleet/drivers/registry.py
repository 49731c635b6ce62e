"""Provider -> driver class: a plain dict, so adding a provider is one line and one import."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import aiohttp

from fleet.domain import Provider
from fleet.drivers.base import Driver, RequestGate
from fleet.drivers.config import EndpointConfig
from fleet.drivers.huawei.bms import HuaweiBmsDriver
from fleet.drivers.huawei.ecs import HuaweiEcsDriver
from fleet.drivers.nova.driver import OpenStackDriver

DriverFactory = Callable[[EndpointConfig, aiohttp.ClientSession, RequestGate], Driver]

DRIVERS: Mapping[Provider, DriverFactory] = MappingProxyType(
    {
        Provider.HUAWEI_ECS: HuaweiEcsDriver,
        Provider.HUAWEI_BMS: HuaweiBmsDriver,
        Provider.OPENSTACK: OpenStackDriver,
    }
)


def create_driver(
    config: EndpointConfig, session: aiohttp.ClientSession, gate: RequestGate
) -> Driver:
    """The driver for `config.provider`, wired to one endpoint's session and gate."""
    return DRIVERS[config.provider](config, session, gate)
