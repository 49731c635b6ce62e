"""Provider -> driver class and settings class: a plain dict and a union, so adding a provider is
one entry in each and its imports."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated

import aiohttp
from pydantic import Field

from fleet.domain import Provider
from fleet.drivers.actions import Capabilities, kinds_of, needs_of
from fleet.drivers.base import Driver, RequestGate
from fleet.drivers.config import EndpointConfig
from fleet.drivers.huawei import bms, ecs
from fleet.drivers.huawei.bms import HuaweiBmsDriver
from fleet.drivers.huawei.ecs import HuaweiEcsDriver
from fleet.drivers.huawei.settings import HuaweiBmsSettings, HuaweiEcsSettings
from fleet.drivers.nova import requests as nova_requests
from fleet.drivers.nova.capabilities import capabilities_for
from fleet.drivers.nova.driver import OpenStackDriver
from fleet.drivers.nova.settings import OpenStackSettings

DriverFactory = Callable[[EndpointConfig, aiohttp.ClientSession, RequestGate], Driver]

DRIVERS: Mapping[Provider, DriverFactory] = MappingProxyType(
    {
        Provider.HUAWEI_ECS: HuaweiEcsDriver,
        Provider.HUAWEI_BMS: HuaweiBmsDriver,
        Provider.OPENSTACK: OpenStackDriver,
    }
)

EndpointSettings = Annotated[
    HuaweiEcsSettings | HuaweiBmsSettings | OpenStackSettings, Field(discriminator="provider")
]
"""One `[[endpoints]]` table: the class of its `provider` owns its keys (one member per provider,
as in DRIVERS; `fleet.settings` reads endpoints as this union)."""


def create_driver(
    config: EndpointConfig, session: aiohttp.ClientSession, gate: RequestGate
) -> Driver:
    """The driver for `config.provider`, wired to one endpoint's session and gate."""
    return DRIVERS[config.provider](config, session, gate)


# What every dialect declares (one entry per dialect): the source of the kinds the API, the CLI
# and the docs list. OpenStack and EasyStack are declared as they are on a cloud that serves the
# tag API (microversion 2.26+); their tag offers say so in their note. On a cloud that does not,
# the driver finds it at start-up and declares the tag actions unsupported with the reason.
DECLARATIONS: tuple[Capabilities, ...] = (
    ecs.CAPABILITIES,
    bms.CAPABILITIES,
    capabilities_for(nova_requests.discovered(nova_requests.OPENSTACK_QUIRKS, True, "2.26")),
    capabilities_for(nova_requests.discovered(nova_requests.EASYSTACK_QUIRKS, True, "2.26")),
)
KINDS: tuple[str, ...] = kinds_of(DECLARATIONS)
"""Every action a user may ask for (an operation's `action`), as the dialects declare them."""
NEEDS: Mapping[str, tuple[str, ...]] = needs_of(DECLARATIONS)
"""kind -> the params it must be given (a resize its flavor, a tag action its tags)."""


def capability_table() -> str:
    """What each dialect offers, as a Markdown table (docs/extending.md carries it; a test keeps
    the two in step)."""
    head = "| action | " + " | ".join(c.dialect for c in DECLARATIONS) + " |"
    rows = [head, "|---" * (len(DECLARATIONS) + 1) + "|"]
    for kind in KINDS:
        cells = []
        for caps in DECLARATIONS:
            offer = caps.offers.get(kind)
            if offer is None or not offer.supported:
                why = "not declared" if offer is None else offer.unsupported_because
                cells.append(f"no: {why}")
            else:
                cell = " / ".join(
                    " -> ".join(s.action.value for s in r.steps if not s.on_failure_only)
                    for r in offer.recipes
                )
                cells.append(f"{cell} ({offer.note})" if offer.note else cell)
        rows.append(f"| `{kind}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)
