"""HuaweiEcsDriver against the simulator's ECS dialect: wire calls, results, error classes."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from fleet.domain import Action, ActionParams, PowerType, Selector, ServerStatus
from fleet.drivers.base import OutcomeState, Submission
from fleet.drivers.errors import InvalidState, NotFound, Permanent, Throttled, Transient
from tests.contract.drivers.conftest import MakeEcs, RecordingGate, calls, pick
from tests.simulator_fixtures import Sim

S = ServerStatus
ACTION = "/cloudservers/action"
V1_LIST = "/cloudservers/detail"


def ecs_ids(sim: Sim) -> set[str]:
    return {s.id for s in sim.world.visible("ecs") if s.deleted_at is None}


# --- listing ----------------------------------------------------------------------------------


async def test_lists_every_ecs_and_no_bms_following_the_paging(sim: Sim, make_ecs: MakeEcs) -> None:
    driver = make_ecs(page_size=5)
    servers = [s async for s in driver.list_servers(Selector())]
    assert {s.id for s in servers} == ecs_ids(sim)
    pages = calls(sim, "GET", "/servers/detail")
    assert len(pages) == 4  # 12 ECS + 6 BMS in one native list: 18 servers, pages of 5
    assert all(str(p["query"]).startswith("limit=5") for p in pages)
    assert "marker=" in str(pages[1]["query"]) and "marker=" not in str(pages[0]["query"])
    world = sim.world.servers
    for server in servers:
        assert server.endpoint == "hw-ecs"
        assert server.flavor == world[server.id].flavor_id
        assert server.status in (S.RUNNING, S.STOPPED)
        assert server.raw_status == world[server.id].status
        expected = {k: v for k, v in world[server.id].tags.items()}
        assert {k: v for k, v in server.tags.items() if not k.startswith("__")} == expected


async def test_v1_list_reads_every_ecs_and_no_bms_by_page_then_marker(
    sim: Sim, make_ecs: MakeEcs
) -> None:
    driver = make_ecs(page_size=5)
    servers = [s async for s in driver.list_v1(Selector())]
    assert {s.id for s in servers} == ecs_ids(sim)
    assert len(servers) == len(ecs_ids(sim)) == 12  # each once, and none of the 6 BMSs
    pages = calls(sim, "GET", V1_LIST)
    assert [p["rate_key"] for p in pages] == ["huawei-ecs:detail"] * 3  # 12 ECSs, pages of 5
    assert [str(p["query"]) for p in pages[:1]] == ["limit=5&offset=1"]
    world = sim.world.servers
    assert [str(p["query"]) for p in pages[1:]] == [
        f"limit=5&marker={servers[4].id}",
        f"limit=5&marker={servers[9].id}",
    ]
    assert not calls(sim, "GET", "/servers/detail")  # the native list is not read
    for server in servers:
        assert server.endpoint == "hw-ecs"
        assert server.flavor == world[server.id].flavor_id
        assert server.status in (S.RUNNING, S.STOPPED)
        assert server.raw_status == world[server.id].status
        assert dict(server.tags) == world[server.id].tags
        assert server.updated and server.locked == world[server.id].locked


async def test_v1_list_ends_on_count_without_an_empty_page(sim: Sim, make_ecs: MakeEcs) -> None:
    servers = [s async for s in make_ecs(page_size=4).list_v1(Selector())]
    assert len(servers) == 12
    assert len(calls(sim, "GET", V1_LIST)) == 3  # 3 full pages; `count` says there is no 4th


async def test_v1_list_keeps_what_the_planner_reads(sim: Sim, make_ecs: MakeEcs) -> None:
    """Task state, lock and fault, as the native list shows them: skip logic reads them."""
    busy, locked, broken = pick(sim, "ecs", "ACTIVE", 3)
    world = sim.world.servers
    world[busy].task_state = "powering-off"
    world[locked].locked = True
    world[broken].status, world[broken].fault = "ERROR", {"code": 500, "message": "disk gone"}
    driver = make_ecs()
    v1 = {s.id: s async for s in driver.list_v1(Selector())}
    native = {s.id: s async for s in driver.list_native(Selector())}
    assert set(v1) == set(native) == ecs_ids(sim)
    for sid, server in v1.items():
        other = native[sid]
        assert (server.status, server.raw_status, server.task_state) == (
            other.status,
            other.raw_status,
            other.task_state,
        )
        assert (server.flavor, server.locked, server.fault, server.updated) == (
            other.flavor,
            other.locked,
            other.fault,
            other.updated,
        )
        assert dict(server.tags) == {k: v for k, v in other.tags.items() if not k.startswith("__")}
    assert v1[busy].status is S.STOPPING and v1[locked].locked
    assert (v1[broken].status, v1[broken].fault) == (S.ERROR, "disk gone")


async def test_v1_list_filters_by_status_server_side_across_pages(
    sim: Sim, make_ecs: MakeEcs
) -> None:
    pick(sim, "ecs", "SHUTOFF", 3)
    by_status = [s async for s in make_ecs(page_size=2).list_v1(Selector(statuses={S.STOPPED}))]
    expected = {s.id for s in sim.world.visible("ecs") if s.status == "SHUTOFF"}
    assert {s.id for s in by_status} == expected and len(by_status) == len(expected)
    pages = calls(sim, "GET", V1_LIST)
    assert all("status=SHUTOFF" in str(p["query"]) for p in pages)
    assert len(pages) == (len(expected) + 1) // 2  # pages of 2, no empty one after the last


async def test_a_name_glob_selects_through_the_v1_list(sim: Sim, make_ecs: MakeEcs) -> None:
    (stopped,) = pick(sim, "ecs", "SHUTOFF", 1)
    driver = make_ecs(page_size=2)
    name = sim.world.servers[stopped].name  # "ecs-<env>-<role>-<n>"
    pattern = name.rsplit("-", 1)[0] + "-*"
    by_name = [s async for s in driver.list_servers(Selector(name_pattern=pattern))]
    expected = {s.id for s in sim.world.visible("ecs") if s.name.startswith(pattern[:-1])}
    assert {s.id for s in by_name} == expected and len(by_name) == len(expected)
    pages = calls(sim, "GET", V1_LIST)
    assert [p["rate_key"] for p in pages] == ["huawei-ecs:detail"] * ((len(expected) + 1) // 2)
    hint = quote(pattern[:-1], safe="~")
    assert all(f"name={hint}&" in str(p["query"]) for p in pages)
    assert not calls(sim, "GET", "/servers/detail")  # the native list is not read
    # with a status too, both go to the cloud; a glob looser than "contains" stays fnmatch's
    both = Selector(name_pattern=f"*{name[4:]}", statuses={S.STOPPED})
    assert [s.id async for s in driver.list_servers(both)] == [stopped]
    assert "status=SHUTOFF" in str(calls(sim, "GET", V1_LIST)[-1]["query"])
    # no name, or a name with no literal part: the native list, as before
    sim.ctx.log.entries.clear()
    assert len([s async for s in driver.list_servers(Selector(name_pattern="*"))]) == 12
    assert len([s async for s in driver.list_servers(Selector(statuses={S.STOPPED}))]) >= 1
    assert calls(sim, "GET", "/servers/detail") and not calls(sim, "GET", V1_LIST)
    # tag criteria: query-by-tag and the native list, whatever the name
    tagged = Selector(name_pattern=pattern, tags_any={"env": ()})
    assert {s.id async for s in driver.list_servers(tagged)} == expected
    assert not calls(sim, "GET", V1_LIST)


async def test_tag_selection_uses_query_by_tag_paged_by_offset(sim: Sim, make_ecs: MakeEcs) -> None:
    wanted = {s.id for s in sim.world.visible("ecs") if s.tags.get("team") in ("alpha", "bravo")}
    assert wanted
    driver = make_ecs(page_size=3)
    selector = Selector(tags_any={"team": ("alpha", "bravo")}, tags_none={"env": ("nope",)})
    found = {s.id async for s in driver.list_servers(selector)}
    assert found == wanted
    queries = calls(sim, "POST", "/servers/resource_instances/action")
    assert [q["body"]["offset"] for q in queries] == [  # type: ignore[index]
        str(3 * i) for i in range(len(queries))
    ]
    first = queries[0]["body"]
    assert first == {
        "action": "filter",
        "limit": "3",
        "offset": "0",
        "tags": [{"key": "team", "values": ["alpha", "bravo"]}],
        "not_tags": [{"key": "env", "values": ["nope"]}],
    }


async def test_selection_by_ids_status_and_name(sim: Sim, make_ecs: MakeEcs) -> None:
    stopped = pick(sim, "ecs", "SHUTOFF", 2)
    driver = make_ecs()
    by_id = [s async for s in driver.list_servers(Selector(ids=frozenset([*stopped, "missing"])))]
    assert sorted(s.id for s in by_id) == sorted(stopped)
    assert len(calls(sim, "GET", "/servers/detail")) == 0  # a few ids: one show each
    by_status = {s.id async for s in driver.list_servers(Selector(statuses=frozenset({S.STOPPED})))}
    assert by_status == {s.id for s in sim.world.visible("ecs") if s.status == "SHUTOFF"}
    assert "status=SHUTOFF" in str(calls(sim, "GET", "/servers/detail")[-1]["query"])
    prod = {s.id async for s in driver.list_servers(Selector(tags_all={"env": "prod"}))}
    assert prod == {s.id for s in sim.world.visible("ecs") if s.tags.get("env") == "prod"}
    narrowed = calls(sim, "GET", "/servers/detail")[-1]["query"]
    assert "tags=env%3Dprod" in str(narrowed)  # tag criteria: the native list, 2.26 tag filter
    name = sim.world.servers[stopped[0]].name
    by_name = [s async for s in driver.list_servers(Selector(name_pattern=name[:-1] + "?"))]
    assert stopped[0] in {s.id for s in by_name}


# --- actions ------------------------------------------------------------------------------------


async def test_batch_stop_one_call_then_the_job_answers_per_server(
    sim: Sim, make_ecs: MakeEcs, gate: RecordingGate
) -> None:
    ids = pick(sim, "ecs", "ACTIVE", 4)
    driver = make_ecs()
    sub = await driver.submit(Action.STOP, ids, ActionParams(type=PowerType.HARD))
    assert sub.job_id and sub.api_class == "action" and sub.request_id
    sent = calls(sim, "POST", ACTION)
    assert len(sent) == 1
    assert sent[0]["body"] == {"os-stop": {"type": "HARD", "servers": [{"id": i} for i in ids]}}
    assert sent[0]["server_ids"] == ids
    assert ("action", 4) in gate.calls
    assert (await driver.get_server(ids[0])).status is S.STOPPING
    assert not (await driver.poll(sub)).finished
    sim.advance(120)
    result = await driver.poll(sub)
    assert result.finished and result.job_status == "SUCCESS"
    assert {o.state for o in result.outcomes.values()} == {OutcomeState.DONE}
    assert set(result.outcomes) == set(ids)
    assert calls(sim, "GET", f"/jobs/{sub.job_id}")[-1]["rate_key"] == "huawei-ecs:jobs"
    assert (await driver.get_server(ids[0])).status is S.STOPPED


@pytest.mark.parametrize(
    ("action", "status", "key", "params", "after"),
    [
        (Action.START, "SHUTOFF", "os-start", ActionParams(), S.RUNNING),
        (Action.REBOOT, "ACTIVE", "reboot", ActionParams(type=PowerType.SOFT), S.RUNNING),
        (Action.STOP, "ACTIVE", "os-stop", ActionParams(), S.STOPPED),
    ],
)
async def test_power_actions_send_their_own_body(
    sim: Sim,
    make_ecs: MakeEcs,
    action: Action,
    status: str,
    key: str,
    params: ActionParams,
    after: ServerStatus,
) -> None:
    ids = pick(sim, "ecs", status, 2)
    driver = make_ecs()
    sub = await driver.submit(action, ids, params)
    body = calls(sim, "POST", ACTION)[0]["body"]
    assert isinstance(body, dict) and list(body) == [key]
    assert body[key]["servers"] == [{"id": i} for i in ids]
    if action is not Action.START:
        assert body[key]["type"] == params.type.value
    sim.advance(120)
    assert (await driver.poll(sub)).finished
    assert {(await driver.get_server(i)).status for i in ids} == {after}


async def test_a_server_in_the_wrong_state_fails_in_its_sub_job(
    sim: Sim, make_ecs: MakeEcs
) -> None:
    running, stopped = pick(sim, "ecs", "ACTIVE", 2)
    sim.world.servers[stopped].status = "SHUTOFF"
    driver = make_ecs()
    sub = await driver.submit(Action.START, [running, stopped], ActionParams())
    sim.advance(120)
    result = await driver.poll(sub)
    assert result.outcomes[stopped].state is OutcomeState.DONE
    failed = result.outcomes[running]
    assert (failed.state, failed.code, failed.kind) == (
        OutcomeState.FAILED,
        "Ecs.0100",
        "invalid_state",
    )
    assert failed.reason


async def test_resize_of_a_stopped_server_and_dry_run(sim: Sim, make_ecs: MakeEcs) -> None:
    (sid,) = pick(sim, "ecs", "SHUTOFF", 1)
    target = next(f for f in ("s6.large.2", "c6.xlarge.2") if f != sim.world.servers[sid].flavor_id)
    driver = make_ecs()
    dry = await driver.submit(Action.RESIZE, [sid], ActionParams(flavor=target, dry_run=True))
    assert dry.done and dry.job_id is None
    assert (await driver.poll(dry)).finished
    assert sim.world.servers[sid].flavor_id != target
    sub = await driver.submit(Action.RESIZE, [sid], ActionParams(flavor=target))
    sent = calls(sim, "POST", f"/cloudservers/{sid}/resize")
    assert [c["body"] for c in sent] == [
        {"resize": {"flavorRef": target}, "dry_run": True},
        {"resize": {"flavorRef": target}},
    ]
    assert (await driver.get_server(sid)).status is S.RESIZING
    sim.advance(600)
    assert (await driver.poll(sub)).outcomes[sid].state is OutcomeState.DONE
    server = await driver.get_server(sid)
    assert (server.status, server.flavor) == (S.STOPPED, target)


async def test_resize_of_a_running_server_is_invalid_state(sim: Sim, make_ecs: MakeEcs) -> None:
    (sid,) = pick(sim, "ecs", "ACTIVE", 1)
    with pytest.raises(InvalidState) as caught:
        await make_ecs().submit(Action.RESIZE, [sid], ActionParams(flavor="c6.xlarge.2"))
    assert caught.value.code == "Ecs.0100"
    assert caught.value.request_id


async def test_tags_add_and_remove_in_2d(sim: Sim, make_ecs: MakeEcs) -> None:
    (sid,) = pick(sim, "ecs", "ACTIVE", 1)
    driver = make_ecs()
    sub = await driver.submit(Action.TAG_ADD, [sid], ActionParams(tags={"fleet-op": "stop"}))
    assert sub.done
    assert sim.world.servers[sid].tags["fleet-op"] == "stop"
    await driver.submit(Action.TAG_REMOVE, [sid], ActionParams(tags={"fleet-op": ""}))
    assert "fleet-op" not in sim.world.servers[sid].tags
    bodies = [c["body"] for c in calls(sim, "POST", f"/servers/{sid}/tags/action")]
    assert bodies == [
        {"action": "create", "tags": [{"key": "fleet-op", "value": "stop"}]},
        {"action": "delete", "tags": [{"key": "fleet-op"}]},
    ]
    assert (await driver.get_server(sid)).tags.get("fleet-op") is None


async def test_batch_delete(sim: Sim, make_ecs: MakeEcs) -> None:
    ids = pick(sim, "ecs", "ACTIVE", 3)
    driver = make_ecs()
    sub = await driver.submit(Action.DELETE, ids, ActionParams(delete_volume=True))
    assert calls(sim, "POST", "/cloudservers/delete")[0]["body"] == {
        "servers": [{"id": i} for i in ids],
        "delete_volume": True,
    }
    sim.advance(120)
    assert {o.state for o in (await driver.poll(sub)).outcomes.values()} == {OutcomeState.DONE}
    assert not (set(ids) & ecs_ids(sim))
    with pytest.raises(NotFound):
        await driver.get_server(ids[0])


async def test_confirm_and_revert_resize_use_the_native_api(sim: Sim, make_ecs: MakeEcs) -> None:
    one, two = pick(sim, "ecs", "ACTIVE", 2)
    driver = make_ecs()
    for sid in (one, two):  # a native resize leaves the server in VERIFY_RESIZE
        target = (
            "c6.xlarge.2" if sim.world.servers[sid].flavor_id != "c6.xlarge.2" else "s6.large.2"
        )
        sim.world.begin(
            sim.world.servers[sid],
            "resize",
            interim=("RESIZE", "resize_prep"),
            end=("VERIFY_RESIZE", "resized", 1),
            flavor_id=target,
            old_flavor_id=sim.world.servers[sid].flavor_id,
        )
    sim.advance(600)
    assert (await driver.get_server(one)).status is S.VERIFY_RESIZE
    confirm = await driver.submit(Action.CONFIRM_RESIZE, [one], ActionParams())
    revert = await driver.submit(Action.REVERT_RESIZE, [two], ActionParams())
    assert [c["body"] for c in calls(sim, "POST", "/action") if "/v2.1/" in str(c["path"])] == [
        {"confirmResize": None},
        {"revertResize": None},
    ]
    sim.advance(600)
    assert (await driver.poll(confirm)).outcomes[one].state is OutcomeState.DONE
    assert (await driver.poll(revert)).outcomes[two].state is OutcomeState.DONE
    assert (await driver.get_server(one)).status is S.RUNNING


async def test_batch_limits_are_checked_before_any_call(sim: Sim, make_ecs: MakeEcs) -> None:
    driver = make_ecs()
    assert driver.max_batch(Action.STOP) == 1000 and driver.max_batch(Action.RESIZE) == 1
    with pytest.raises(Permanent, match="at most 1000"):
        await driver.submit(Action.STOP, [f"id-{i}" for i in range(1001)], ActionParams())
    with pytest.raises(Permanent, match="at most 1"):
        await driver.submit(Action.RESIZE, ["a", "b"], ActionParams(flavor="x"))
    assert calls(sim, "POST", ACTION) == []


# --- errors -------------------------------------------------------------------------------------


async def test_a_batch_rejected_for_some_servers_names_them(sim: Sim, make_ecs: MakeEcs) -> None:
    ids = pick(sim, "ecs", "ACTIVE", 4)
    sim.world.servers[ids[1]].locked = True
    with pytest.raises(Permanent) as caught:
        await make_ecs().submit(Action.STOP, ids, ActionParams())
    assert caught.value.code == "Ecs.0605"
    assert caught.value.server_ids == (ids[1],)
    sim.world.servers[ids[2]].locked = True
    with pytest.raises(NotFound) as missing:
        await make_ecs().submit(Action.STOP, [ids[0], "no-such-server"], ActionParams())
    assert missing.value.server_ids == ("no-such-server",)


async def test_a_busy_server_is_throttled_for_a_minute(sim: Sim, make_ecs: MakeEcs) -> None:
    ids = pick(sim, "ecs", "ACTIVE", 1)
    driver = make_ecs()
    await driver.submit(Action.STOP, ids, ActionParams())
    with pytest.raises(Throttled) as caught:
        await driver.submit(Action.REBOOT, ids, ActionParams())
    assert (caught.value.code, caught.value.retry_after) == ("Ecs.0603", 60.0)


async def test_rate_limit_answer_is_throttled_and_reported_to_the_gate(
    sim: Sim, make_ecs: MakeEcs, gate: RecordingGate
) -> None:
    sim.set_limit("huawei-ecs:action", 3, 60.0, "servers")
    ids = pick(sim, "ecs", "ACTIVE", 4)
    driver = make_ecs()
    await driver.submit(Action.STOP, ids[:3], ActionParams())
    with pytest.raises(Throttled) as caught:
        await driver.submit(Action.STOP, ids[3:], ActionParams())
    assert (caught.value.code, caught.value.http_status) == ("Common.1503", 429)
    assert gate.throttles == [("action", None)]
    # every call let through was reported answered, refused ones included (the limiter's window
    # for a call starts at its answer)
    assert gate.answered == gate.calls


@pytest.mark.parametrize(
    ("fault", "expected", "ambiguous"),
    [
        ({"kind": "error_burst", "status": 503}, Transient, False),
        ({"kind": "throttle"}, Throttled, None),
        ({"kind": "drop"}, Transient, True),
        ({"kind": "timeout", "seconds": 3.0}, Transient, True),
    ],
)
async def test_fault_kinds_are_classified(
    sim: Sim,
    make_ecs: MakeEcs,
    fault: dict[str, object],
    expected: type[Exception],
    ambiguous: bool | None,
) -> None:
    ids = pick(sim, "ecs", "ACTIVE", 2)
    sim.fault(match="huawei-ecs:action", count=1, **fault)
    driver = make_ecs(timeout=0.5)
    with pytest.raises(expected) as caught:
        await driver.submit(Action.STOP, ids, ActionParams())
    if ambiguous is not None:
        assert isinstance(caught.value, Transient)
        assert caught.value.ambiguous is ambiguous


async def test_a_failing_server_reports_the_vendor_code_and_reason(
    sim: Sim, make_ecs: MakeEcs
) -> None:
    ids = pick(sim, "ecs", "ACTIVE", 2)
    sim.fault(kind="job_fail", server_ids=[ids[0]], error_code="Ecs.0227", reason="disk gone")
    driver = make_ecs()
    sub = await driver.submit(Action.REBOOT, ids, ActionParams())
    sim.advance(120)
    result = await driver.poll(sub)
    assert result.job_status == "FAIL"
    bad = result.outcomes[ids[0]]
    assert (bad.state, bad.code, bad.reason) == (OutcomeState.FAILED, "Ecs.0227", "disk gone")
    assert result.outcomes[ids[1]].state is OutcomeState.DONE


async def test_unknown_job_is_not_found(sim: Sim, make_ecs: MakeEcs) -> None:
    driver = make_ecs()
    with pytest.raises(NotFound) as caught:
        await driver.poll(Submission(Action.STOP, ("x",), "action", job_id="0" * 32))
    assert caught.value.code == "Common.0011"


async def test_reads_are_retried_within_bounds(sim: Sim, make_ecs: MakeEcs) -> None:
    sim.fault(kind="error_burst", match="huawei-nova:list", count=1, status=500)
    servers = [s async for s in make_ecs(read_retries=1).list_servers(Selector())]
    assert len(servers) == 12
    assert [c["status"] for c in calls(sim, "GET", "/servers/detail")] == [500, 200]
    sim.fault(kind="error_burst", match="huawei-nova:list", count=2, status=500)
    with pytest.raises(Transient):
        [s async for s in make_ecs(read_retries=1).list_servers(Selector())]
