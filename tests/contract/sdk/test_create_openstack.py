"""openstacksdk `create_server` against the simulator: on EasyStack (`/compute/v2.1`) and on the
Huawei ECS endpoint's native mount (`/v2.1/{project_id}`): the answer, BUILD -> ACTIVE, the
listing with name and tags, the instance action `create`, and Nova's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openstack
import openstack.exceptions
import pytest

from tests.contract.sdk.test_openstack_clients import connect, run
from tests.contract.sdk.test_openstack_round2 import huawei_nova
from tests.simulator_fixtures import Sim, SimFactory

pytestmark = [
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
]


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    async with simulator_factory(speed=1e-9, ecs=2, bms=1, openstack=3) as running:
        yield running


async def endpoints(sim: Sim) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{sim.base_url}/_sim/endpoints") as resp,
    ):
        body: dict[str, Any] = await resp.json()
        return body


async def connection(sim: Sim, surface: str) -> tuple[Any, dict[str, str]]:
    """A connection and the ids a create on `surface` may name."""
    ep = await endpoints(sim)
    if surface == "huawei":
        ecs = ep["huawei"]["create"]["ecs"]
        need = {"flavor": ecs["flavor"], "image": ecs["image"], "network": ecs["network"]}
        return await huawei_nova(sim), need
    return connect(ep["openstack"]), ep["openstack"]["create"]


@pytest.mark.parametrize(("surface", "kind"), [("openstack", "openstack"), ("huawei", "ecs")])
async def test_create_server_builds_then_is_active(sim: Sim, surface: str, kind: str) -> None:
    conn, need = await connection(sim, surface)
    try:
        made = await run(
            lambda: conn.compute.create_server(
                name="web-001",
                flavor_id=need["flavor"],
                image_id=need["image"],
                networks=[{"uuid": need["network"]}],
                tags=["fleet-op=op7"] if surface == "openstack" else None,
                admin_password="Sim-pass-123",
            )
        )
        assert made.id in sim.servers(kind) and made.admin_password == "Sim-pass-123"
        assert any(link["rel"] == "self" for link in made.links)
        first = await run(lambda: conn.compute.get_server(made.id))
        assert (first.status, first.vm_state) == ("BUILD", "building")
        sim.advance(60)
        done = await run(lambda: conn.compute.wait_for_server(made, interval=0.05, wait=5))
        assert done.status == "ACTIVE" and done.name == "web-001"
        listed = await run(lambda: list(conn.compute.servers(name="web-001")))
        assert [s.id for s in listed] == [made.id]
        [action] = await run(lambda: list(conn.compute.server_actions(made.id)))
        assert action.action == "create"
    finally:
        await run(conn.close)
    if surface == "openstack":
        assert sim.world.servers[made.id].tags == {"fleet-op": "op7"}


@pytest.mark.parametrize("surface", ["openstack", "huawei"])
async def test_create_server_errors_in_novas_shape(sim: Sim, surface: str) -> None:
    conn, need = await connection(sim, surface)

    def create(**over: Any) -> Any:
        fields = {
            "name": "x",
            "flavor_id": need["flavor"],
            "image_id": need["image"],
            "networks": [{"uuid": need["network"]}],
            **over,
        }
        return conn.compute.create_server(**fields)

    try:
        with pytest.raises(openstack.exceptions.BadRequestException, match="Flavor 999"):
            await run(lambda: create(flavor_id="999"))
        with pytest.raises(openstack.exceptions.BadRequestException, match="image"):
            await run(lambda: create(image_id="00000000-0000-4000-8000-000000000000"))
        kind = "ecs" if surface == "huawei" else "openstack"
        sim.world.catalog.quotas[kind] = len(sim.servers(kind))
        with pytest.raises(openstack.exceptions.ForbiddenException, match="Quota exceeded"):
            await run(create)
    finally:
        await run(conn.close)
    assert sim.requests()[-1]["status"] == 403


async def test_create_fail_fault_ends_in_error_with_a_fault(sim: Sim) -> None:
    conn, need = await connection(sim, "openstack")
    sim.fault(kind="create_fail", match="openstack:create", reason="No valid host was found.")
    try:
        made = await run(
            lambda: conn.compute.create_server(
                name="doomed",
                flavor_id=need["flavor"],
                image_id=need["image"],
                networks=[{"uuid": need["network"]}],
            )
        )
        sim.advance(60)
        shown = await run(lambda: conn.compute.get_server(made.id))
    finally:
        await run(conn.close)
    assert shown.status == "ERROR" and "No valid host" in shown.fault["message"]
