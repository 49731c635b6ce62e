"""Drivers wired to the in-process simulator: one aiohttp session per test, endpoints from
`/_sim/endpoints`, and a recording gate so tests can see which API classes each call used."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

from fleet.domain import Provider
from fleet.drivers.config import (
    AkSkCredentials,
    EndpointConfig,
    PasswordCredentials,
    Secret,
)
from fleet.drivers.http import new_session
from fleet.drivers.huawei.bms import HuaweiBmsDriver
from fleet.drivers.huawei.ecs import HuaweiEcsDriver
from fleet.drivers.nova.driver import OpenStackDriver
from tests.simulator_fixtures import Sim, SimFactory


@dataclass
class RecordingGate:
    """A RequestGate that never waits and remembers every call and throttling answer."""

    calls: list[tuple[str, int]] = field(default_factory=list)
    throttles: list[tuple[str, float | None]] = field(default_factory=list)
    answered: list[tuple[str, int]] = field(default_factory=list)

    async def before(self, api_class: str, servers: int) -> None:
        self.calls.append((api_class, servers))

    def after(self, api_class: str, servers: int) -> None:
        self.answered.append((api_class, servers))

    def throttled(self, api_class: str, retry_after: float | None) -> None:
        self.throttles.append((api_class, retry_after))

    def classes(self) -> list[str]:
        return [c for c, _ in self.calls]


def huawei_config(sim: Sim, provider: Provider, **overrides: object) -> EndpointConfig:
    """A Huawei endpoint on the simulator; `aksk=True` signs requests instead of using IAM."""
    aksk = bool(overrides.pop("aksk", False))
    hw = sim.endpoints["huawei"]
    creds: AkSkCredentials | PasswordCredentials
    if aksk:
        creds = AkSkCredentials(ak=Secret(hw["ak"]), sk=Secret(hw["sk"]))
    else:
        creds = PasswordCredentials(
            username=hw["username"],
            password=Secret(hw["password"]),
            user_domain_name=hw["domain_name"],
        )
    values: dict[str, object] = {
        "name": "hw-ecs" if provider is Provider.HUAWEI_ECS else "hw-bms",
        "provider": provider,
        "credentials": creds,
        "region": hw["region"],
        "project_id": hw["project_id"] if aksk else None,
        "project_name": None,  # Huawei project names are region names: the region is used
        "iam_url": hw["iam_url"],
        "ecs_url": hw["ecs_url"],
        "bms_url": hw["bms_url"],
        "timeout": 5.0,
        "read_retries": 0,
    }
    values.update(overrides)
    return EndpointConfig(**values)  # type: ignore[arg-type]


def openstack_config(sim: Sim, **overrides: object) -> EndpointConfig:
    """An OpenStack endpoint on the simulator, EasyStack-flavoured unless `flavour` says otherwise."""
    flavour = str(overrides.pop("flavour", "easystack"))
    os_ = sim.endpoints["openstack"]
    values: dict[str, object] = {
        "name": "es",
        "provider": Provider.OPENSTACK,
        "credentials": PasswordCredentials(
            username=os_["username"],
            password=Secret(os_["password"]),
            user_domain_name=os_["user_domain_name"],
            project_domain_name=os_["project_domain_name"],
        ),
        "region": os_["region_name"],
        "project_name": os_["project_name"],
        "auth_url": os_["auth_url"],
        "flavour": flavour,
        "timeout": 5.0,
        "read_retries": 0,
    }
    values.update(overrides)
    return EndpointConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with new_session(8) as s:
        yield s


@pytest.fixture
def gate() -> RecordingGate:
    return RecordingGate()


MakeEcs = Callable[..., HuaweiEcsDriver]
MakeBms = Callable[..., HuaweiBmsDriver]
MakeOs = Callable[..., OpenStackDriver]


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    """A world whose clock only moves when a test calls `sim.advance` (every interim state shows)."""
    async with simulator_factory(speed=1e-9, ecs=12, bms=6, openstack=12) as s:
        yield s


def pick(sim: Sim, kind: str, status: str, n: int) -> list[str]:
    """`n` idle, unlocked servers of `kind` forced into `status` (ACTIVE or SHUTOFF)."""
    chosen = [s for s in sim.world.visible(kind) if not s.locked and not s.busy][:n]
    assert len(chosen) == n
    for s in chosen:
        s.status, s.vm_state, s.power_state = (
            ("ACTIVE", "active", 1) if status == "ACTIVE" else ("SHUTOFF", "stopped", 4)
        )
    return [s.id for s in chosen]


def calls(sim: Sim, method: str, fragment: str) -> list[dict[str, object]]:
    """Logged requests of `method` whose path contains `fragment`."""
    return [e for e in sim.requests() if e["method"] == method and fragment in str(e["path"])]


@pytest.fixture
def make_ecs(sim: Sim, session: aiohttp.ClientSession, gate: RecordingGate) -> MakeEcs:
    def make(**kw: object) -> HuaweiEcsDriver:
        return HuaweiEcsDriver(huawei_config(sim, Provider.HUAWEI_ECS, **kw), session, gate)

    return make


@pytest.fixture
def make_bms(sim: Sim, session: aiohttp.ClientSession, gate: RecordingGate) -> MakeBms:
    def make(**kw: object) -> HuaweiBmsDriver:
        return HuaweiBmsDriver(huawei_config(sim, Provider.HUAWEI_BMS, **kw), session, gate)

    return make


@pytest.fixture
def make_os(sim: Sim, session: aiohttp.ClientSession, gate: RecordingGate) -> MakeOs:
    def make(**kw: object) -> OpenStackDriver:
        return OpenStackDriver(openstack_config(sim, **kw), session, gate)

    return make
