"""Nova actions on both mounts: transitions, preconditions, resize, locks and EasyStack quirks.

The simulated clock runs at x0.001, so nothing settles unless a test advances it: interim states
are observed deterministically.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.simulator.nova_client import Nova, slow_sim
from tests.simulator_fixtures import Sim, SimFactory


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    async with slow_sim(simulator_factory, ecs=6, bms=2, openstack=6) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def pick(sim: Sim, kind: str, status: str = "ACTIVE", index: int = 0) -> str:
    """A server of `kind`, put into `status` by hand (as the console would)."""
    server = sim.world.servers[sim.servers(kind)[index]]
    if status == "SHUTOFF":
        server.status, server.vm_state, server.power_state = "SHUTOFF", "stopped", 4
    else:
        server.status, server.vm_state, server.power_state = "ACTIVE", "active", 1
    return server.id


def state(body: dict[str, object]) -> tuple[object, object, object]:
    return body["status"], body["OS-EXT-STS:task_state"], body["OS-EXT-STS:vm_state"]


@pytest.mark.parametrize(
    ("surface", "start_body", "stopped_power"),
    [
        ("openstack", {"os-start": None}, 4),
        ("openstack", {"os-start": True}, 4),
        ("huawei", {"os-start": {}}, 3),
    ],
    ids=["easystack-null", "easystack-true", "huawei"],
)
async def test_stop_then_start(
    sim: Sim,
    http: aiohttp.ClientSession,
    surface: str,
    start_body: dict[str, object],
    stopped_power: int,
) -> None:
    nova = Nova(sim, http, surface)
    sid = pick(sim, "openstack" if surface == "openstack" else "ecs")
    assert (await nova.action(sid, {"os-stop": None})).status == 202
    assert state(await nova.server(sid)) == ("ACTIVE", "powering-off", "active")
    sim.advance(25)
    stopped = await nova.server(sid)
    assert state(stopped) == ("SHUTOFF", None, "stopped")
    assert stopped["OS-EXT-STS:power_state"] == stopped_power
    again = await nova.action(sid, {"os-stop": None})
    assert again.status == 409
    assert again.body["conflictingRequest"]["message"] == (
        f"Cannot 'stop' instance {sid} while it is in vm_state stopped"
    )
    assert (await nova.action(sid, start_body)).status == 202
    assert state(await nova.server(sid)) == ("SHUTOFF", "powering-on", "stopped")
    sim.advance(25)
    assert state(await nova.server(sid)) == ("ACTIVE", None, "active")
    log = sim.requests(rate_key=f"{nova.surface.replace('huawei', 'huawei-nova')}:action")
    assert [e["action"] for e in log] == ["os-stop", "os-stop", "os-start"]
    assert all(e["server_ids"] == [sid] for e in log)


async def test_start_of_active_and_busy_servers_is_409(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    es = Nova(sim, http, "openstack")
    sid = pick(sim, "openstack")
    refused = await es.action(sid, {"os-start": None})
    assert (
        refused.status == 409 and "vm_state active" in refused.body["conflictingRequest"]["message"]
    )
    assert (await es.action(sid, {"reboot": {"type": "SOFT"}})).status == 202
    busy = await es.action(sid, {"os-stop": None})
    assert busy.status == 409
    assert "task_state reboot_started" in busy.body["conflictingRequest"]["message"]


async def test_huawei_hard_stop_is_faster_than_soft(sim: Sim, http: aiohttp.ClientSession) -> None:
    hw = Nova(sim, http, "huawei")
    soft, hard, other = (pick(sim, "ecs", index=i) for i in range(3))
    assert (await hw.action(soft, {"os-stop": {"type": "SOFT"}})).status == 202
    assert (await hw.action(hard, {"os-stop": {"type": "HARD"}})).status == 202
    assert (await hw.action(soft, {"os-stop": {"type": "SOFT"}})).status == 409  # busy
    assert (await hw.action(other, {"os-stop": {"type": "NOW"}})).status == 400
    sim.advance(6)
    assert (await hw.server(hard))["status"] == "SHUTOFF"
    assert (await hw.server(soft))["OS-EXT-STS:task_state"] == "powering-off"


async def test_reboot_soft_hard_and_invalid(sim: Sim, http: aiohttp.ClientSession) -> None:
    es = Nova(sim, http, "openstack")
    ids = [pick(sim, "openstack", index=i) for i in range(3)]
    assert (await es.action(ids[0], {"reboot": {"type": "soft"}})).status == 202
    assert state(await es.server(ids[0])) == ("REBOOT", "reboot_started", "active")
    assert (await es.action(ids[1], {"reboot": {"type": "Hard"}})).status == 202
    assert state(await es.server(ids[1])) == ("HARD_REBOOT", "reboot_started_hard", "active")
    assert (await es.action(ids[2], {"reboot": {"type": "KICK"}})).status == 400
    assert (await es.action(ids[2], {"reboot": {}})).status == 400
    sim.advance(31)
    assert state(await es.server(ids[0])) == ("ACTIVE", None, "active")
    assert state(await es.server(ids[1])) == ("ACTIVE", None, "active")


async def test_reboot_of_a_stopped_server(sim: Sim, http: aiohttp.ClientSession) -> None:
    es = Nova(sim, http, "openstack")
    sid = pick(sim, "openstack", "SHUTOFF")
    assert (await es.action(sid, {"reboot": {"type": "SOFT"}})).status == 409
    assert (await es.action(sid, {"reboot": {"type": "HARD"}})).status == 202
    sim.advance(16)
    assert (await es.server(sid))["status"] == "ACTIVE"


@pytest.mark.parametrize("surface", ["huawei", "openstack"])
async def test_resize_then_confirm(sim: Sim, http: aiohttp.ClientSession, surface: str) -> None:
    nova = Nova(sim, http, surface, version="2.1")
    kind = "ecs" if surface == "huawei" else "openstack"
    sid = pick(sim, kind)
    old = sim.world.servers[sid].flavor_id
    new = next(f.id for f in sim.world.flavors.values() if f.kind == kind and f.id != old)
    assert (await nova.action(sid, {"resize": {"flavorRef": new}})).status == 202
    assert state(await nova.server(sid)) == ("RESIZE", "resize_prep", "active")
    sim.advance(61)
    verify = await nova.server(sid)
    assert state(verify) == ("VERIFY_RESIZE", None, "resized")
    assert verify["flavor"]["id"] == new
    assert sim.world.servers[sid].old_flavor_id == old
    assert (await nova.action(sid, {"confirmResize": None})).status == 202
    sim.advance(6)
    done = await nova.server(sid)
    assert state(done) == ("ACTIVE", None, "active") and done["flavor"]["id"] == new
    assert sim.world.servers[sid].old_flavor_id is None
    again = await nova.action(sid, {"confirmResize": None})
    assert again.status == 409


async def test_resize_of_a_stopped_server_then_revert(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    hw = Nova(sim, http, "huawei")
    sid = pick(sim, "ecs", "SHUTOFF")
    old = sim.world.servers[sid].flavor_id
    new = next(f.id for f in sim.world.flavors.values() if f.kind == "ecs" and f.id != old)
    ref = f"{sim.base_url}/flavors/{new}"
    assert (await hw.action(sid, {"resize": {"flavorRef": ref}})).status == 202
    sim.advance(61)
    assert (await hw.server(sid))["status"] == "VERIFY_RESIZE"
    assert (await hw.action(sid, {"revertResize": None})).status == 202
    assert state(await hw.server(sid)) == ("REVERT_RESIZE", "resize_reverting", "resized")
    sim.advance(21)
    back = await hw.server(sid)
    assert state(back) == ("SHUTOFF", None, "stopped")
    assert sim.world.servers[sid].flavor_id == old


async def test_resize_refusals(sim: Sim, http: aiohttp.ClientSession) -> None:
    hw = Nova(sim, http, "huawei")
    sid = pick(sim, "ecs")
    same = await hw.action(sid, {"resize": {"flavorRef": sim.world.servers[sid].flavor_id}})
    assert same.status == 400
    assert same.body["badRequest"]["message"] == "When resizing, instances must change flavor!"
    assert (await hw.action(sid, {"resize": {"flavorRef": "m9.huge"}})).status == 400
    assert (await hw.action(sid, {"resize": {"flavorRef": "214"}})).status == 400  # other cloud
    assert (await hw.action(sid, {"resize": {}})).status == 400
    bms = pick(sim, "bms")
    metal = await hw.action(bms, {"resize": {"flavorRef": "physical.s4.large"}})
    assert metal.status == 400
    assert (await hw.action(sid, {"live_resize": {"flavorRef": "s6.large.2"}})).status == 400
    assert sim.world.servers[sid].status == "ACTIVE" and not sim.world.servers[sid].busy


async def test_easystack_live_resize(sim: Sim, http: aiohttp.ClientSession) -> None:
    es = Nova(sim, http, "openstack")
    sid = pick(sim, "openstack")
    target = "214" if sim.world.servers[sid].flavor_id != "214" else "1"
    assert (await es.action(sid, {"live_resize": {"flavorRef": target}})).status == 202
    sim.advance(31)
    done = await es.server(sid)
    assert state(done) == ("ACTIVE", None, "active")
    assert sim.world.servers[sid].flavor_id == target
    stopped = pick(sim, "openstack", "SHUTOFF", index=1)
    target = "214" if sim.world.servers[stopped].flavor_id != "214" else "1"
    refused = await es.action(stopped, {"live_resize": {"flavorRef": target}})
    assert refused.status == 409


async def test_locked_servers_refuse_actions(sim: Sim, http: aiohttp.ClientSession) -> None:
    hw = Nova(sim, http, "huawei")
    sid = pick(sim, "ecs")
    assert (await hw.action(sid, {"lock": None})).status == 202
    assert (await hw.server(sid))["locked"] is True
    refused = await hw.action(sid, {"os-stop": {}})
    assert refused.status == 409 and refused.body["conflictingRequest"]["message"].endswith(
        "is locked"
    )
    assert (await hw.call("DELETE", f"/servers/{sid}")).status == 409
    assert (await hw.action(sid, {"unlock": None})).status == 202
    assert (await hw.action(sid, {"os-stop": {}})).status == 202


async def test_bad_action_bodies(sim: Sim, http: aiohttp.ClientSession) -> None:
    es = Nova(sim, http, "openstack")
    sid = pick(sim, "openstack")
    unknown = await es.action(sid, {"os-explode": None})
    assert unknown.status == 400
    assert unknown.body["badRequest"]["message"] == "There is no such action: os-explode"
    assert (await es.action(sid, {})).status == 400
    assert (await es.action(sid, {"os-stop": None, "os-start": None})).status == 400
    assert (await es.action("no-such-server", {"os-stop": None})).status == 404
    async with http.post(
        es.url(f"/servers/{sid}/action"), data=b"{", headers={"X-Auth-Token": es.token}
    ) as resp:
        assert resp.status == 400
    assert sim.world.servers[sid].status == "ACTIVE" and not sim.world.servers[sid].busy


async def test_huawei_delete_makes_the_server_disappear(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    hw = Nova(sim, http, "huawei")
    sid = pick(sim, "ecs", "SHUTOFF")
    reply = await hw.call("DELETE", f"/servers/{sid}")
    assert reply.status == 204 and reply.headers["Connection"] == "close"
    assert state(await hw.server(sid)) == ("SHUTOFF", "deleting", "stopped")
    assert (await hw.call("DELETE", f"/servers/{sid}")).status == 204
    sim.advance(16)
    assert (await hw.call("GET", f"/servers/{sid}")).status == 404
    listed = await hw.call("GET", "/servers", params={"limit": "1000"})
    assert sid not in {s["id"] for s in listed.body["servers"]}
    assert (await hw.call("DELETE", f"/servers/{sid}")).status == 404
    log = sim.requests(rate_key="huawei-nova:delete")
    assert [e["status"] for e in log] == [204, 204, 404]


async def test_easystack_recycle_bin(sim: Sim, http: aiohttp.ClientSession) -> None:
    es = Nova(sim, http, "openstack")
    sid = pick(sim, "openstack")
    assert (await es.call("DELETE", f"/servers/{sid}")).status == 204
    sim.advance(16)
    recycled = await es.server(sid)
    assert state(recycled) == ("DELETED", None, "deleted")
    assert recycled["deleted"] and recycled["estimated_deleted"] == ""
    normal = await es.call("GET", "/servers")
    assert sid not in {s["id"] for s in normal.body["servers"]}
    binned = await es.call("GET", "/servers/detail", params={"deleted": "True"})
    assert [s["id"] for s in binned.body["servers"]] == [sid]
    assert (await es.action(sid, {"os-start": None})).status == 409
    assert (await es.call("DELETE", f"/servers/{sid}")).status == 204  # no-op
    assert (await es.action(sid, {"restore": None})).status == 202
    sim.advance(11)
    restored = await es.server(sid)
    assert state(restored) == ("ACTIVE", None, "active") and restored["deleted"] == ""
    assert (await es.action(sid, {"restore": None})).status == 409
    assert (await es.action(sid, {"forceDelete": None})).status == 409
    assert (await es.call("DELETE", f"/servers/{sid}")).status == 204
    sim.advance(16)
    assert (await es.action(sid, {"forceDelete": None})).status == 202
    assert (await es.call("GET", f"/servers/{sid}")).status == 404
    assert sid not in sim.world.servers


async def test_changes_since_shows_deleted_servers(sim: Sim, http: aiohttp.ClientSession) -> None:
    hw = Nova(sim, http, "huawei")
    sid = pick(sim, "ecs")
    since = "2000-01-01T00:00:00Z"
    assert (await hw.call("DELETE", f"/servers/{sid}")).status == 204
    sim.advance(16)
    seen = await hw.call("GET", "/servers/detail", params={"changes-since": since, "limit": "999"})
    gone = next(s for s in seen.body["servers"] if s["id"] == sid)
    assert gone["status"] == "DELETED"
    assert (await hw.call("GET", f"/servers/{sid}")).status == 404


async def test_action_throttling_counts_each_server(sim: Sim, http: aiohttp.ClientSession) -> None:
    sim.set_limit("openstack:action", 2, 60.0, unit="servers")
    es = Nova(sim, http, "openstack")
    ids = [pick(sim, "openstack", index=i) for i in range(3)]
    statuses = [(await es.action(sid, {"os-stop": None})).status for sid in ids]
    assert statuses == [202, 202, 429]
    assert not sim.world.servers[ids[2]].busy
    stats = sim.ctx.limits.snapshot()["openstack:action"]
    assert stats["throttled"] == 1 and stats["max_in_window"] == 2
