"""HuaweiBmsDriver against the simulator's BMS dialect (v1 on the BMS URL, 1D tags on the ECS URL)."""

from __future__ import annotations

import pytest

from fleet.domain import Action, ActionParams, PowerType, Selector, ServerStatus
from fleet.drivers.base import OutcomeState
from fleet.drivers.errors import Throttled, Unsupported
from tests.contract.drivers.conftest import MakeBms, RecordingGate, calls, pick
from tests.simulator_fixtures import Sim

S = ServerStatus
ACTION = "/baremetalservers/action"


async def test_lists_bms_by_page_number(sim: Sim, make_bms: MakeBms) -> None:
    driver = make_bms(page_size=4)
    servers = [s async for s in driver.list_servers(Selector())]
    assert {s.id for s in servers} == {s.id for s in sim.world.visible("bms")}
    pages = calls(sim, "GET", "/baremetalservers/detail")
    assert [p["query"] for p in pages] == ["limit=4&offset=1", "limit=4&offset=2"]
    assert {p["rate_key"] for p in pages} == {"huawei-bms:detail"}
    assert all(s.flavor and s.flavor.startswith("physical.") for s in servers)
    prod = {s.id async for s in driver.list_servers(Selector(tags_all={"env": "prod"}))}
    assert prod == {s.id for s in sim.world.visible("bms") if s.tags.get("env") == "prod"}


async def test_get_server_uses_the_v1_show(sim: Sim, make_bms: MakeBms) -> None:
    (sid,) = pick(sim, "bms", "SHUTOFF", 1)
    server = await make_bms().get_server(sid)
    assert (server.id, server.status, server.raw_status) == (sid, S.STOPPED, "SHUTOFF")
    assert calls(sim, "GET", f"/baremetalservers/{sid}")[0]["rate_key"] == "huawei-bms:show"


@pytest.mark.parametrize(
    ("action", "status", "key", "after"),
    [
        (Action.STOP, "ACTIVE", "os-stop", S.STOPPED),
        (Action.START, "SHUTOFF", "os-start", S.RUNNING),
        (Action.REBOOT, "ACTIVE", "reboot", S.RUNNING),
    ],
)
async def test_batch_power_actions_with_a_server_list(
    sim: Sim, make_bms: MakeBms, action: Action, status: str, key: str, after: ServerStatus
) -> None:
    ids = pick(sim, "bms", status, 3)
    driver = make_bms()
    sub = await driver.submit(action, ids, ActionParams(type=PowerType.SOFT))
    (sent,) = calls(sim, "POST", ACTION)
    expected: dict[str, object] = {"servers": [{"id": i} for i in ids]}
    if action is not Action.START:
        expected = {"type": "SOFT", **expected}  # always sent: BMS defaults to HARD
    assert sent["body"] == {key: expected}
    assert sent["rate_key"] == "huawei-bms:action"
    sim.advance(300)
    result = await driver.poll(sub)
    assert {o.state for o in result.outcomes.values()} == {OutcomeState.DONE}
    assert calls(sim, "GET", "/jobs/")[-1]["rate_key"] == "huawei-bms:jobs"
    assert {(await driver.get_server(i)).status for i in ids} == {after}


async def test_one_d_tags_on_the_native_api(sim: Sim, make_bms: MakeBms) -> None:
    (sid,) = pick(sim, "bms", "ACTIVE", 1)
    driver = make_bms()
    await driver.submit(Action.TAG_ADD, [sid], ActionParams(tags={"fleet-op": "stop", "x": ""}))
    assert sim.world.servers[sid].tags["fleet-op"] == "stop"
    assert sim.world.servers[sid].tags["x"] == ""
    puts = calls(sim, "PUT", f"/servers/{sid}/tags/")
    assert [str(p["path"]).rsplit("/", 1)[1] for p in puts] == ["fleet-op=stop", "x"]
    await driver.submit(Action.TAG_REMOVE, [sid], ActionParams(tags={"fleet-op": ""}))
    assert "fleet-op" not in sim.world.servers[sid].tags
    assert len(calls(sim, "DELETE", f"/servers/{sid}/tags/")) == 1
    assert (await driver.get_server(sid)).tags.get("x") == ""


async def test_resize_delete_and_system_tags_are_unsupported(sim: Sim, make_bms: MakeBms) -> None:
    driver = make_bms()
    for action in (Action.RESIZE, Action.DELETE, Action.CONFIRM_RESIZE):
        with pytest.raises(Unsupported, match="Huawei BMS"):
            await driver.submit(action, ["x"], ActionParams(flavor="f"))
    with pytest.raises(Unsupported, match="__type_baremetal"):
        driver.check(Action.TAG_REMOVE, ActionParams(tags={"__type_baremetal": ""}))
    assert sim.requests() == []


async def test_fifty_per_minute_budget_answer(
    sim: Sim, make_bms: MakeBms, gate: RecordingGate
) -> None:
    sim.set_limit("huawei-bms:action", 1, 60.0)
    ids = pick(sim, "bms", "ACTIVE", 2)
    driver = make_bms()
    await driver.submit(Action.STOP, ids[:1], ActionParams())
    with pytest.raises(Throttled) as caught:
        await driver.submit(Action.STOP, ids[1:], ActionParams())
    assert caught.value.code == "Common.1503"
    assert gate.throttles == [("action", None)]
    assert driver.capabilities.budgets["action"][0].limit == 50
