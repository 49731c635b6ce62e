"""The official OpenStack clients (openstacksdk and the `openstack` command) against the simulator.

Both are configured only from `GET /_sim/endpoints`, as a user of `fleet simulate` would be.
openstacksdk is synchronous: its calls run in a worker thread while the simulator serves in the
test's event loop, and simulated time is frozen and moved by hand between calls. The command-line
test starts the shipped `fleet simulate --port 0` process and drives the `openstack` executable
that sits next to the running interpreter, exactly as the README's quick start does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import openstack
import openstack.exceptions
import pytest

from tests.simulator_fixtures import Sim, SimFactory

T = TypeVar("T")
BIN = Path(sys.executable).parent

# openstacksdk 4.22 warns about its own internals on every connection and request (InfluxDB
# support with no InfluxDB configured, a `service_type` argument its proxy passes to itself, the
# `_compute_attributes` hook its resources call): its two "removed in a later openstacksdk"
# categories are silenced, nothing else. They say nothing about the server it talks to.
pytestmark = [
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
]


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    async with simulator_factory(speed=1e-9, ecs=2, bms=1, openstack=9) as running:
        for server in running.world.servers.values():
            server.status, server.vm_state, server.power_state = "ACTIVE", "active", 1
        yield running


async def published(base_url: str) -> dict[str, str]:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/_sim/endpoints") as resp:
        creds: dict[str, str] = (await resp.json())["openstack"]
        return creds


def connect(ep: dict[str, str]) -> Any:
    """An openstacksdk connection built from the published values only (no clouds.yaml)."""
    return openstack.connect(
        load_yaml_config=False,
        load_envvars=False,
        auth_type="password",
        auth={
            "auth_url": ep["auth_url"],
            "username": ep["username"],
            "password": ep["password"],
            "project_name": ep["project_name"],
            "user_domain_name": ep["user_domain_name"],
            "project_domain_name": ep["project_domain_name"],
        },
        region_name=ep["region_name"],
        identity_api_version="3",
    )


async def run(fn: Callable[[], T]) -> T:
    """Run a blocking client call in a worker thread. Pass a lambda: even `conn.compute` does
    network discovery on first access and must not run on the simulator's event loop."""
    return await asyncio.to_thread(fn)


async def test_sdk_lists_and_pages_the_simulated_servers(sim: Sim) -> None:
    conn = connect(await published(sim.base_url))
    try:
        listed = await run(lambda: list(conn.compute.servers()))
        paged = await run(lambda: list(conn.compute.servers(limit=4)))
    finally:
        await run(conn.close)
    expected = set(sim.servers("openstack"))
    assert {s.id for s in listed} == expected and len(listed) == 9
    assert [s.id for s in paged] == [s.id for s in listed]
    assert {s.status for s in listed} == {"ACTIVE"}
    pages = [e for e in sim.requests(rate_key="openstack:list") if "limit=4" in str(e["query"])]
    # The client followed the simulator's `next` links (limit first, then marker) page by page.
    assert [e["query"] for e in pages[1:3]] == [
        f"limit=4&marker={listed[3].id}",
        f"limit=4&marker={listed[7].id}",
    ]


async def test_sdk_stop_start_reboot(sim: Sim) -> None:
    conn = connect(await published(sim.base_url))
    sid = sim.servers("openstack")[0]
    try:
        await run(lambda: conn.compute.stop_server(sid))
        assert sim.world.servers[sid].task_state == "powering-off"
        sim.advance(60)
        stopped = await run(lambda: conn.compute.get_server(sid))
        assert stopped.status == "SHUTOFF" and stopped.power_state == 4
        with pytest.raises(openstack.exceptions.ConflictException):
            await run(lambda: conn.compute.stop_server(sid))
        await run(lambda: conn.compute.start_server(sid))
        sim.advance(60)
        assert (await run(lambda: conn.compute.get_server(sid))).status == "ACTIVE"
        await run(lambda: conn.compute.reboot_server(sid, "SOFT"))
        assert (await run(lambda: conn.compute.get_server(sid))).status == "REBOOT"
        sim.advance(60)
        assert (await run(lambda: conn.compute.get_server(sid))).status == "ACTIVE"
    finally:
        await run(conn.close)
    actions = [e["action"] for e in sim.requests(rate_key="openstack:action")]
    assert actions == ["os-stop", "os-stop", "os-start", "reboot"]


async def test_sdk_resize_and_confirm(sim: Sim) -> None:
    conn = connect(await published(sim.base_url))
    sid = sim.servers("openstack")[1]
    old = sim.world.servers[sid].flavor_id
    try:
        flavors = await run(lambda: list(conn.compute.flavors()))
        target = next(f for f in flavors if f.id != old)
        await run(lambda: conn.compute.resize_server(sid, target))
        assert (await run(lambda: conn.compute.get_server(sid))).status == "RESIZE"
        sim.advance(120)
        verify = await run(lambda: conn.compute.get_server(sid))
        assert verify.status == "VERIFY_RESIZE"
        assert verify.flavor.original_name == target.name
        await run(lambda: conn.compute.confirm_server_resize(sid))
        sim.advance(60)
        done = await run(
            lambda: conn.compute.wait_for_server(
                conn.compute.get_server(sid), status="ACTIVE", interval=0.01, wait=5
            )
        )
    finally:
        await run(conn.close)
    assert done.status == "ACTIVE" and done.flavor.original_name == target.name
    assert sim.world.servers[sid].flavor_id == target.id
    assert {f.id for f in flavors} == {"1", "2", "3", "214"}


@contextlib.asynccontextmanager
async def fleet_simulate(*args: str) -> AsyncIterator[str]:
    """`fleet simulate --port 0 ...` as its own process; yields the base URL from its banner."""
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "fleet"),
        "simulate",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert "listening on " in first, first
        yield first.split("listening on ", 1)[1].strip()
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def openstack_cli(ep: dict[str, str], home: Path, *args: str) -> tuple[int, str, str]:
    """Run the `openstack` command with the published values in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(
        HOME=str(home),
        OS_AUTH_URL=ep["auth_url"],
        OS_USERNAME=ep["username"],
        OS_PASSWORD=ep["password"],
        OS_PROJECT_NAME=ep["project_name"],
        OS_USER_DOMAIN_NAME=ep["user_domain_name"],
        OS_PROJECT_DOMAIN_NAME=ep["project_domain_name"],
        OS_REGION_NAME=ep["region_name"],
        OS_IDENTITY_API_VERSION="3",
    )
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "openstack"),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def sim_get(base: str, path: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(f"{base}{path}") as resp:
        return await resp.json()


async def test_openstack_cli_lists_and_stops_a_server(tmp_path: Path) -> None:
    async with fleet_simulate("--seed", "5", "--speed", "0.000001") as base:
        ep = (await sim_get(base, "/_sim/endpoints"))["openstack"]
        rc, out, err = await openstack_cli(ep, tmp_path, "server", "list", "-f", "json")
        assert rc == 0, err
        listed = json.loads(out)
        world = (await sim_get(base, "/_sim/servers?kind=openstack"))["servers"]
        assert {s["ID"] for s in listed} == {s["id"] for s in world}
        assert {s["ID"]: s["Status"] for s in listed} == {s["id"]: s["status"] for s in world}
        target = next(s for s in listed if s["Status"] == "ACTIVE")
        rc, _, err = await openstack_cli(ep, tmp_path, "server", "stop", target["ID"])
        assert rc == 0, err
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/_sim/clock", json={"advance": 60}) as resp:
                assert resp.status == 200
        rc, out, err = await openstack_cli(
            ep, tmp_path, "server", "show", target["ID"], "-f", "json"
        )
        assert rc == 0, err
        shown = json.loads(out)
        assert shown["status"] == "SHUTOFF" and shown["OS-EXT-STS:vm_state"] == "stopped"
        log = (await sim_get(base, "/_sim/requests?rate_key=openstack:action"))["requests"]
        assert [(e["action"], e["status"]) for e in log] == [("os-stop", 202)]
