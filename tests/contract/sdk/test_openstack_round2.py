"""openstacksdk and the `openstack` command on what outside clients call beyond fleet's own needs:
instance actions, availability zones with details, EasyStack tags, and Nova's error bodies.

Both Nova mounts: EasyStack through Keystone (as a `clouds.yaml` user would), and Huawei's native
`/v2.1/{project_id}` with a Huawei IAM token given to openstacksdk as an admin token with the
compute endpoint overridden (the way openstacksdk reaches a Nova without a Keystone catalog).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openstack
import openstack.exceptions
import pytest

from fleet.simulator.core import HUAWEI
from tests.contract.sdk.test_openstack_clients import (
    connect,
    fleet_simulate,
    openstack_cli,
    published,
    run,
    sim_get,
)
from tests.simulator_fixtures import Sim, SimFactory

pytestmark = [
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
]


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    async with simulator_factory(speed=1e-9, ecs=2, bms=1, openstack=4) as running:
        for server in running.world.servers.values():
            server.status, server.vm_state, server.power_state = "ACTIVE", "active", 1
        yield running


async def huawei_nova(sim: Sim) -> Any:
    """openstacksdk on the Huawei native mount, with a Huawei IAM token."""
    token = sim.ctx.issue_token(HUAWEI, sim.world.huawei_project_id).value
    url = f"{sim.base_url}/v2.1/{sim.world.huawei_project_id}"
    return openstack.connect(
        load_yaml_config=False,
        load_envvars=False,
        auth_type="admin_token",
        auth={"token": token, "endpoint": url},
        compute_endpoint_override=url,
    )


async def connection(sim: Sim, surface: str) -> Any:
    if surface == "huawei":
        return await huawei_nova(sim)
    return connect(await published(sim.base_url))


@pytest.mark.parametrize(("surface", "kind"), [("huawei", "ecs"), ("openstack", "openstack")])
async def test_sdk_server_actions_and_one_action(sim: Sim, surface: str, kind: str) -> None:
    conn = await connection(sim, surface)
    sid = sim.servers(kind)[0]
    try:
        await run(lambda: conn.compute.stop_server(sid))
        sim.advance(60)
        await run(lambda: conn.compute.start_server(sid))
        listed = await run(lambda: list(conn.compute.server_actions(sid)))
        assert [a.action for a in listed] == ["start", "stop"]  # newest first
        assert all(a.request_id.startswith("req-") and a.user_id for a in listed)
        stop = await run(lambda: conn.compute.get_server_action(listed[1].request_id, sid))
        [event] = stop.events
        assert (event.event, event.result) == ("compute_stop_instance", "Success")
        assert event.finish_time >= event.start_time
        with pytest.raises(openstack.exceptions.NotFoundException, match="not found"):
            await run(
                lambda: conn.compute.get_server_action("req-unknown", sid, ignore_missing=False)
            )
    finally:
        await run(conn.close)
    sent = [e for e in sim.requests() if e["action"] in ("os-stop", "os-start")]
    headers = {f"req-{e['request_id']}" for e in sent}
    assert {a.request_id for a in listed} == headers


@pytest.mark.parametrize("surface", ["huawei", "openstack"])
async def test_sdk_availability_zones_with_details(sim: Sim, surface: str) -> None:
    conn = await connection(sim, surface)
    try:
        zones = await run(lambda: list(conn.compute.availability_zones(details=True)))
        plain = await run(lambda: list(conn.compute.availability_zones()))
    finally:
        await run(conn.close)
    detailed = {z.name: z for z in zones}
    assert set(detailed) == {"internal", "az1"}
    assert detailed["az1"].state == {"available": True}
    assert all("nova-compute" in services for services in detailed["az1"].hosts.values())
    assert [(z.name, z.hosts) for z in plain] == [("az1", None)]


async def test_sdk_tags_on_easystack(sim: Sim) -> None:
    conn = connect(await published(sim.base_url))
    first, second, *_ = sim.servers("openstack")
    sim.world.servers[first].tags = {"env": "prod"}
    sim.world.servers[second].tags = {"env": "dev"}
    try:
        server = await run(lambda: conn.compute.get_server(first))
        await run(lambda: server.add_tag(conn.compute, "owner=ops"))
        await run(lambda: conn.compute.add_tag_to_server(second, "owner=ops"))
        assert sim.world.servers[first].tags == {"env": "prod", "owner": "ops"}
        await run(lambda: conn.compute.remove_tag_from_server(second, "env=dev"))
        assert sim.world.servers[second].tags == {"owner": "ops"}

        def ids(**query: str) -> set[str]:  # of the two servers this test tags
            return {s.id for s in conn.compute.servers(**query)} & {first, second}

        assert await run(lambda: ids(tags="owner=ops")) == {first, second}
        assert await run(lambda: ids(tags="owner=ops,env=prod")) == {first}
        assert await run(lambda: ids(any_tags="env=prod,env=dev")) == {first}
        assert first not in await run(lambda: ids(not_tags="owner=ops,env=prod"))
        assert await run(lambda: ids(not_any_tags="owner=ops")) == set()
    finally:
        await run(conn.close)


async def test_sdk_errors_on_easystack_keep_nova_texts(sim: Sim) -> None:
    conn = connect(await published(sim.base_url))
    sid = sim.servers("openstack")[0]
    try:
        await run(lambda: conn.compute.stop_server(sid))
        sim.advance(60)
        with pytest.raises(openstack.exceptions.ConflictException) as conflict:
            await run(lambda: conn.compute.stop_server(sid))
        with pytest.raises(openstack.exceptions.NotFoundException) as missing:
            await run(lambda: conn.compute.get_server("no-such-server"))
    finally:
        await run(conn.close)
    # Upstream Nova names the action `stop` in this message (servers.py `_stop_server`).
    assert f"Cannot 'stop' instance {sid} while it is in vm_state stopped" in str(conflict.value)
    assert "Instance no-such-server could not be found." in str(missing.value)


async def test_openstack_cli_server_events_and_zones(tmp_path: Path) -> None:
    async with fleet_simulate("--seed", "5", "--speed", "0.000001") as base:
        ep = (await sim_get(base, "/_sim/endpoints"))["openstack"]
        world = (await sim_get(base, "/_sim/servers?kind=openstack"))["servers"]
        target = next(s for s in world if s["status"] == "ACTIVE")
        rc, _, err = await openstack_cli(ep, tmp_path, "server", "stop", target["id"])
        assert rc == 0, err
        rc, out, err = await openstack_cli(
            ep, tmp_path, "server", "event", "list", target["id"], "-f", "json"
        )
        assert rc == 0, err
        [event] = json.loads(out)
        assert event["Action"] == "stop" and event["Request ID"].startswith("req-")
        rc, out, err = await openstack_cli(
            ep, tmp_path, "availability", "zone", "list", "--compute", "--long", "-f", "json"
        )
        assert rc == 0, err
        rows = json.loads(out)
        assert {"internal", "az1"} <= {r["Zone Name"] for r in rows}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/_sim/requests?path_prefix=/compute") as resp:
                paths = [e["path"] for e in (await resp.json())["requests"]]
        assert any(p.endswith("/os-instance-actions") for p in paths)
