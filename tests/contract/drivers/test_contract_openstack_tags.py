"""OpenStackDriver against an EasyStack simulator with and without the tag API (world file
`tag_api`): the compute version document is read once, the microversion sent follows it, and the
tag actions and tag filters are there exactly when the cloud serves 2.26."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from fleet.domain import Action, ActionParams, Selector
from fleet.drivers.errors import Unsupported
from fleet.drivers.nova.driver import OpenStackDriver
from fleet.drivers.nova.requests import NOT_YET_DISCOVERED
from fleet.engine.admission import ActRequest, Admission
from fleet.simulator.worldgen import WorldSpec
from jobs.errors import FieldError
from tests.contract.drivers.conftest import RecordingGate, calls, openstack_config
from tests.simulator_fixtures import Sim, SimFactory

MARK = {"fleet-op": "stop.2026-12-20"}
Make = Callable[..., OpenStackDriver]


@pytest.fixture(params=[True, False], ids=["tag_api", "no_tag_api"])
def tag_api(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
async def world(simulator_factory: SimFactory, tag_api: bool) -> AsyncIterator[Sim]:
    spec = WorldSpec(
        seed=3, speed=1e-9, counts={"ecs": 0, "bms": 0, "openstack": 12}, tag_api=tag_api
    )
    async with simulator_factory(spec=spec) as sim:
        yield sim


@pytest.fixture
def make(world: Sim, session: aiohttp.ClientSession, gate: RecordingGate) -> Make:
    def build(**kw: object) -> OpenStackDriver:
        return OpenStackDriver(openstack_config(world, **kw), session, gate)

    return build


def compute_calls(sim: Sim) -> list[dict[str, object]]:
    return [e for e in sim.requests() if str(e["path"]).startswith("/compute/v2.1/")]


async def test_the_version_document_decides_microversion_and_tags(
    world: Sim, make: Make, tag_api: bool
) -> None:
    driver = make()
    assert not driver.capabilities.offers["tag_add"].supported  # EasyStack's static declaration
    assert driver.capabilities.offers["tag_add"].unsupported_because == NOT_YET_DISCOVERED
    await driver.discover()
    log = world.requests()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("POST", "/identity/v3/auth/tokens", 201),
        ("GET", "/compute/v2.1", 200),
    ]
    assert driver.version is not None
    assert driver.version.max_version == ((2, 96) if tag_api else (2, 25))
    for kind in ("tag_add", "tag_remove"):
        assert driver.capabilities.offers[kind].supported is tag_api
    assert driver.capabilities.has("tag_add") is tag_api
    servers = [s async for s in driver.list_servers(Selector())]
    await driver.get_server(servers[0].id)
    await driver.flavor_table()
    sent = compute_calls(world)
    assert len(sent) >= 3 and all(e["status"] == 200 for e in sent)
    assert {e["microversion"] for e in sent} == {"2.26" if tag_api else "2.25"}
    await driver.discover()  # read once
    assert len([e for e in world.requests() if e["path"] == "/compute/v2.1"]) == 1


async def test_tag_add_and_remove_where_the_cloud_serves_tags(world: Sim, make: Make) -> None:
    if not world.world.openstack_tag_api:
        pytest.skip("the cloud has no tag API")
    driver = make()
    await driver.discover()
    sid = world.servers("openstack")[0]
    added = await driver.submit(Action.TAG_ADD, [sid], ActionParams(tags=MARK))
    assert added.done and added.api_class == "tags"
    assert (await driver.get_server(sid)).tags["fleet-op"] == "stop.2026-12-20"
    assert world.world.servers[sid].tags["fleet-op"] == "stop.2026-12-20"
    removed = await driver.submit(Action.TAG_REMOVE, [sid], ActionParams(tags={"fleet-op": ""}))
    assert removed.done
    assert "fleet-op" not in (await driver.get_server(sid)).tags
    puts = calls(world, "PUT", f"/servers/{sid}/tags/")
    deletes = calls(world, "DELETE", f"/servers/{sid}/tags/")
    assert len(puts) == 1 and len(deletes) == 1
    assert {e["microversion"] for e in puts + deletes} == {"2.26"}


async def test_tags_are_refused_with_the_reason_without_the_tag_api(world: Sim, make: Make) -> None:
    if world.world.openstack_tag_api:
        pytest.skip("the cloud serves the tag API")
    driver = make()
    await driver.discover()
    sid = world.servers("openstack")[0]
    for action in (Action.TAG_ADD, Action.TAG_REMOVE):
        with pytest.raises(Unsupported) as refused:
            driver.check(action, ActionParams(tags=MARK))
        assert refused.value.field == "action"
        assert "does not serve the tag API" in refused.value.message
        assert "2.25" in refused.value.message
        with pytest.raises(Unsupported):
            await driver.submit(action, [sid], ActionParams(tags=MARK))
    reason = driver.capabilities.offers["tag_add"].unsupported_because or ""
    assert "maximum microversion is 2.25" in reason
    assert not [e for e in world.requests() if "/tags" in str(e["path"])]


async def test_tag_filtered_listing(world: Sim, make: Make, tag_api: bool) -> None:
    """With the tag API the filters go to the cloud; without it the cloud shows no tags, so
    only what a server shows decides (a tag it cannot show is not there)."""
    driver = make(page_size=5)
    servers = list(world.world.visible("openstack"))
    servers[0].tags.update(env="prod", team="beta")  # chosen
    servers[1].tags.update(env="prod", team="alpha")  # excluded
    selector = Selector(tags_all={"env": "prod"}, tags_none={"team": ("alpha",)})
    chosen = {s.id async for s in driver.list_servers(selector)}
    expected = {
        s.id
        for s in servers
        if tag_api and s.tags.get("env") == "prod" and s.tags.get("team") != "alpha"
    }
    assert chosen == expected and (expected or not tag_api)
    query = str(calls(world, "GET", "/servers/detail")[-1]["query"])
    assert ("tags=env%3Dprod" in query) is tag_api
    assert ("not-tags-any=team%3Dalpha" in query) is tag_api
    untagged = {s.id async for s in driver.list_servers(Selector(tags_none={"team": ("alpha",)}))}
    assert untagged == {s.id for s in servers if not tag_api or s.tags.get("team") != "alpha"}


async def test_admission_asks_the_cloud_before_it_answers(
    world: Sim, make: Make, tag_api: bool
) -> None:
    """A fresh driver (nothing read yet): admission waits for the version document, so a named
    EasyStack endpoint is refused tags only when its cloud has no tag API."""
    admission = Admission({"es": make()})
    request = ActRequest("tag_add", {"endpoints": ["es"]}, {"tags": MARK})
    if tag_api:
        new = await admission.admit(request)
        assert new.kind == "tag_add"
        return
    with pytest.raises(FieldError) as refused:
        await admission.admit(request)
    assert refused.value.field == "targets.endpoints[0]"
    assert "does not serve the tag API" in refused.value.message


async def test_plain_openstack_without_the_tag_api_loses_its_tags(world: Sim, make: Make) -> None:
    driver = make(flavour="openstack")
    assert driver.capabilities.offers["tag_add"].supported  # upstream Nova's static declaration
    await driver.discover()
    assert driver.capabilities.offers["tag_add"].supported is world.world.openstack_tag_api
