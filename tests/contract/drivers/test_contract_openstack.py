"""OpenStackDriver (EasyStack flavour, and plain OpenStack bodies) against the simulator's Nova."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from fleet.domain import Action, ActionParams, PowerType, Selector, ServerStatus
from fleet.drivers.base import OutcomeState, Submission
from fleet.drivers.errors import InvalidState, NotFound, Throttled, Transient, Unsupported
from tests.contract.drivers.conftest import MakeOs, RecordingGate, calls, pick
from tests.simulator_fixtures import Sim

S = ServerStatus


def actions(sim: Sim, sid: str) -> list[object]:
    return [c["body"] for c in calls(sim, "POST", f"/compute/v2.1/servers/{sid}/action")]


async def test_keystone_catalog_then_paged_list_with_server_side_tags(
    sim: Sim, make_os: MakeOs
) -> None:
    driver = make_os(page_size=5)
    servers = [s async for s in driver.list_servers(Selector())]
    assert {s.id for s in servers} == {s.id for s in sim.world.visible("openstack")}
    log = sim.requests()
    assert (log[0]["method"], log[0]["path"]) == ("POST", "/identity/v3/auth/tokens")
    pages = calls(sim, "GET", "/compute/v2.1/servers/detail")
    assert len(pages) == 3 and all("limit=5" in str(p["query"]) for p in pages)
    selector = Selector(tags_all={"env": "prod"}, tags_none={"team": ("alpha",)})
    chosen = {s.id async for s in driver.list_servers(selector)}
    expected = {
        s.id
        for s in sim.world.visible("openstack")
        if s.tags.get("env") == "prod" and s.tags.get("team") != "alpha"
    }
    assert chosen == expected
    assert "tags=env%3Dprod" in str(calls(sim, "GET", "/servers/detail")[-1]["query"])
    assert len([e for e in sim.requests() if "auth/tokens" in str(e["path"])]) == 1


async def test_stop_and_start_with_easystack_bodies(sim: Sim, make_os: MakeOs) -> None:
    (sid,) = pick(sim, "openstack", "ACTIVE", 1)
    driver = make_os()
    stop = await driver.submit(Action.STOP, [sid], ActionParams())
    assert stop.job_id is None and stop.api_class == "action"
    assert (await driver.poll(stop)).outcomes[sid].state is OutcomeState.RUNNING
    sim.advance(120)
    assert (await driver.poll(stop)).outcomes[sid].state is OutcomeState.DONE
    start = await driver.submit(Action.START, [sid], ActionParams())
    sim.advance(120)
    assert (await driver.poll(start)).outcomes[sid].state is OutcomeState.DONE
    assert actions(sim, sid) == [{"os-stop": True}, {"os-start": True}]
    assert {c["rate_key"] for c in calls(sim, "POST", "/action")} == {"openstack:action"}


async def test_plain_openstack_bodies_are_null(sim: Sim, make_os: MakeOs) -> None:
    (sid,) = pick(sim, "openstack", "ACTIVE", 1)
    driver = make_os(flavour="openstack")
    await driver.submit(Action.STOP, [sid], ActionParams())
    sim.advance(120)
    await driver.submit(Action.START, [sid], ActionParams())
    assert actions(sim, sid) == [{"os-stop": None}, {"os-start": None}]


async def test_reboot_types(sim: Sim, make_os: MakeOs) -> None:
    soft, hard = pick(sim, "openstack", "ACTIVE", 2)
    driver = make_os()
    subs = [
        await driver.submit(Action.REBOOT, [soft], ActionParams()),
        await driver.submit(Action.REBOOT, [hard], ActionParams(type=PowerType.HARD)),
    ]
    assert actions(sim, soft) == [{"reboot": {"type": "SOFT"}}]
    assert actions(sim, hard) == [{"reboot": {"type": "HARD"}}]
    assert (await driver.get_server(hard)).status is S.REBOOTING
    sim.advance(120)
    for sub in subs:
        assert (await driver.poll(sub)).finished


async def test_resize_then_confirm_and_revert(sim: Sim, make_os: MakeOs) -> None:
    one, two = pick(sim, "openstack", "ACTIVE", 2)
    driver = make_os()
    targets = {}
    for sid in (one, two):
        targets[sid] = "3" if sim.world.servers[sid].flavor_id != "3" else "2"
        sub = await driver.submit(Action.RESIZE, [sid], ActionParams(flavor=targets[sid]))
        assert sub.flavor == targets[sid]
        assert (await driver.poll(sub)).outcomes[sid].state is OutcomeState.RUNNING
    sim.advance(600)
    assert (await driver.get_server(one)).status is S.VERIFY_RESIZE
    confirm = await driver.submit(Action.CONFIRM_RESIZE, [one], ActionParams())
    revert = await driver.submit(Action.REVERT_RESIZE, [two], ActionParams())
    sim.advance(600)
    assert (await driver.poll(confirm)).outcomes[one].state is OutcomeState.DONE
    assert (await driver.poll(revert)).outcomes[two].state is OutcomeState.DONE
    assert (await driver.get_server(one)).flavor == targets[one]
    assert (await driver.get_server(two)).flavor != targets[two]
    assert actions(sim, one) == [{"resize": {"flavorRef": targets[one]}}, {"confirmResize": None}]
    assert actions(sim, two) == [{"resize": {"flavorRef": targets[two]}}, {"revertResize": None}]


async def test_live_resize(sim: Sim, make_os: MakeOs) -> None:
    (sid,) = pick(sim, "openstack", "ACTIVE", 1)
    target = "214" if sim.world.servers[sid].flavor_id != "214" else "3"
    driver = make_os()
    sub = await driver.submit(Action.RESIZE, [sid], ActionParams(flavor=target, live=True))
    assert actions(sim, sid) == [{"live_resize": {"flavorRef": target}}]
    sim.advance(600)
    assert (await driver.poll(sub)).outcomes[sid].state is OutcomeState.DONE
    server = await driver.get_server(sid)
    assert (server.status, server.flavor) == (S.RUNNING, target)


async def test_delete_goes_to_the_recycle_bin(sim: Sim, make_os: MakeOs) -> None:
    (sid,) = pick(sim, "openstack", "ACTIVE", 1)
    driver = make_os()
    sub = await driver.submit(Action.DELETE, [sid], ActionParams())
    (sent,) = calls(sim, "DELETE", f"/compute/v2.1/servers/{sid}")
    assert (sent["status"], sent["rate_key"]) == (204, "openstack:delete")
    assert (await driver.poll(sub)).outcomes[sid].state is OutcomeState.RUNNING
    sim.advance(120)
    outcome = (await driver.poll(sub)).outcomes[sid]
    assert outcome.state is OutcomeState.DONE


async def test_what_easystack_cannot_do_is_refused_before_any_call(
    sim: Sim, make_os: MakeOs
) -> None:
    driver = make_os()
    assert Action.TAG_ADD not in driver.capabilities.supported
    with pytest.raises(Unsupported, match="tag"):
        await driver.submit(Action.TAG_ADD, ["x"], ActionParams(tags={"a": "b"}))
    with pytest.raises(Unsupported, match="HARD"):
        await driver.submit(Action.STOP, ["x"], ActionParams(type=PowerType.HARD))
    with pytest.raises(Unsupported, match="dry run"):
        await driver.submit(Action.RESIZE, ["x"], ActionParams(flavor="2", dry_run=True))
    with pytest.raises(Unsupported, match="live resize"):
        make_os(flavour="openstack").check(Action.RESIZE, ActionParams(flavor="2", live=True))
    assert sim.requests() == []


async def test_conflict_is_invalid_state_and_missing_is_not_found(
    sim: Sim, make_os: MakeOs
) -> None:
    (sid,) = pick(sim, "openstack", "ACTIVE", 1)
    driver = make_os()
    with pytest.raises(InvalidState) as caught:
        await driver.submit(Action.START, [sid], ActionParams())
    assert (caught.value.http_status, caught.value.code) == (409, "conflictingRequest")
    assert caught.value.request_id
    with pytest.raises(NotFound):
        await driver.get_server("00000000-0000-0000-0000-000000000000")
    gone = Submission(Action.DELETE, ("00000000-0000-0000-0000-000000000000",), "delete")
    assert {o.state for o in (await driver.poll(gone)).outcomes.values()} == {OutcomeState.DONE}
    stopped = Submission(Action.STOP, ("00000000-0000-0000-0000-000000000000",), "action")
    outcome = (await driver.poll(stopped)).outcomes["00000000-0000-0000-0000-000000000000"]
    assert (outcome.state, outcome.kind) == (OutcomeState.FAILED, "not_found")


async def test_throttling_keeps_retry_after(sim: Sim, make_os: MakeOs, gate: RecordingGate) -> None:
    sim.set_limit("openstack:action", 1, 60.0)
    a, b = pick(sim, "openstack", "ACTIVE", 2)
    driver = make_os()
    await driver.submit(Action.STOP, [a], ActionParams())
    with pytest.raises(Throttled) as caught:
        await driver.submit(Action.STOP, [b], ActionParams())
    assert caught.value.http_status == 429
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1
    assert gate.throttles == [("action", caught.value.retry_after)]


@pytest.mark.parametrize(
    ("fault", "ambiguous"),
    [({"kind": "error_burst", "status": 503}, False), ({"kind": "drop"}, True)],
)
async def test_transient_faults(
    sim: Sim, make_os: MakeOs, fault: dict[str, object], ambiguous: bool
) -> None:
    (sid,) = pick(sim, "openstack", "ACTIVE", 1)
    sim.fault(match="openstack:action", count=1, **fault)
    with pytest.raises(Transient) as caught:
        await make_os().submit(Action.STOP, [sid], ActionParams())
    assert caught.value.ambiguous is ambiguous


async def test_a_failed_action_is_reported_from_the_server(sim: Sim, make_os: MakeOs) -> None:
    (sid,) = pick(sim, "openstack", "ACTIVE", 1)
    sim.fault(kind="job_fail", server_ids=[sid], reason="host lost")
    driver = make_os()
    sub = await driver.submit(Action.STOP, [sid], ActionParams())
    sim.advance(120)
    outcome = (await driver.poll(sub)).outcomes[sid]
    assert (outcome.state, outcome.reason) == (OutcomeState.FAILED, "host lost")


def _kinds(entries: list[dict[str, object]]) -> list[str]:
    return [str(e["rate_key"]) for e in entries]


async def test_a_poll_of_several_servers_reads_what_changed_since_the_cloud_accepted(
    sim: Sim, make_os: MakeOs
) -> None:
    a, b, c, idle = pick(sim, "openstack", "ACTIVE", 4)
    server = sim.world.servers[idle]  # stopped long ago: absent from the listing
    server.status, server.vm_state, server.power_state = ("SHUTOFF", "stopped", 4)
    driver = make_os()
    sim.advance(3600)  # the cloud's clock is not this host's: `since` must come from the cloud
    subs = [await driver.submit(Action.STOP, [sid], ActionParams()) for sid in (a, b, c)]
    cloud_now = sim.world.clock.now()
    for sub in subs:
        assert sub.since is not None
        assert abs((datetime.fromisoformat(sub.since) - cloud_now).total_seconds()) < 2
    since = min(s.since for s in subs if s.since)
    sim.advance(120)
    seen = len(sim.requests())
    result = await driver.poll(Submission(Action.STOP, (a, b, c, idle), "action", since=since))
    assert {sid: o.state for sid, o in result.outcomes.items()} == {
        a: OutcomeState.DONE,
        b: OutcomeState.DONE,
        c: OutcomeState.DONE,
        idle: OutcomeState.DONE,  # not changed since: read with a show, and it is stopped
    }
    new = sim.requests()[seen:]
    assert _kinds(new) == ["openstack:list", "openstack:show"]
    assert "changes-since=" in str(new[0]["query"]) and str(new[1]["path"]).endswith(idle)


async def test_a_poll_without_an_acceptance_time_or_of_one_server_shows_each(
    sim: Sim, make_os: MakeOs
) -> None:
    a, b = pick(sim, "openstack", "ACTIVE", 2)
    driver = make_os()
    sub_a = await driver.submit(Action.STOP, [a], ActionParams())
    await driver.submit(Action.STOP, [b], ActionParams())
    sim.advance(120)
    seen = len(sim.requests())
    assert (await driver.poll(sub_a)).outcomes[a].state is OutcomeState.DONE
    both = await driver.poll(Submission(Action.STOP, (a, b), "action"))
    assert {o.state for o in both.outcomes.values()} == {OutcomeState.DONE}
    assert _kinds(sim.requests()[seen:]) == ["openstack:show"] * 3


async def test_a_listing_that_misses_servers_is_completed_by_shows(
    sim: Sim, make_os: MakeOs
) -> None:
    """A cloud clock behind the recorded time (or changes the listing cannot reach): every server
    is still read, the ones the listing lacks with a show."""
    a, b = pick(sim, "openstack", "ACTIVE", 2)
    driver = make_os()
    for sid in (a, b):
        await driver.submit(Action.STOP, [sid], ActionParams())
    sim.advance(120)
    future = (sim.world.clock.now() + timedelta(days=1)).isoformat()
    seen = len(sim.requests())
    result = await driver.poll(Submission(Action.STOP, (a, b), "action", since=future))
    assert {o.state for o in result.outcomes.values()} == {OutcomeState.DONE}
    assert _kinds(sim.requests()[seen:]) == ["openstack:list"] + ["openstack:show"] * 2


async def test_the_next_page_is_asked_for_while_this_one_is_read(sim: Sim, make_os: MakeOs) -> None:
    driver = make_os(page_size=5)
    listing = driver.list_servers(Selector())
    try:
        await anext(listing)
        await asyncio.sleep(0.05)  # the consumer is busy with the first server
        assert len(calls(sim, "GET", "/compute/v2.1/servers/detail")) == 2
    finally:
        await listing.aclose()  # type: ignore[attr-defined]


async def test_a_listing_stopped_early_cancels_the_page_asked_for_ahead(
    sim: Sim, make_os: MakeOs, gate: RecordingGate
) -> None:
    sim.fault(kind="latency", match="openstack:list", ms=300, count=2)
    driver = make_os(page_size=5)
    listing = driver.list_servers(Selector())
    await anext(listing)
    await asyncio.sleep(0.05)  # the second page is asked for, its answer 0.3 s away
    assert [c for c, _ in gate.calls].count("list") == 2
    await listing.aclose()  # type: ignore[attr-defined]
    await asyncio.sleep(0.02)
    # the gate hears at once that the call ended (cancelled), not when its answer would come
    assert [c for c, _ in gate.answered].count("list") == 2


async def test_a_failed_listing_or_read_holds_up_only_its_own_server(
    sim: Sim, make_os: MakeOs
) -> None:
    a, b, c = pick(sim, "openstack", "ACTIVE", 3)
    driver = make_os(read_retries=0)
    subs = [await driver.submit(Action.STOP, [sid], ActionParams()) for sid in (a, b, c)]
    since = min(s.since for s in subs if s.since)
    sim.advance(120)
    sim.fault(kind="error_burst", status=503, match="openstack:list", count=1)
    sim.fault(kind="error_burst", status=503, match="openstack:show", count=1)
    seen = len(sim.requests())
    result = await driver.poll(Submission(Action.STOP, (a, b, c), "action", since=since))
    log = sim.requests()[seen:]
    assert [(e["rate_key"], e["status"]) for e in log] == [
        ("openstack:list", 503),
        ("openstack:show", 503),
        ("openstack:show", 200),
        ("openstack:show", 200),
    ]
    unread = next(sid for sid in (a, b, c) if str(log[1]["path"]).endswith(sid))
    assert set(result.outcomes) == {a, b, c} - {unread}  # read again next round
    assert {o.state for o in result.outcomes.values()} == {OutcomeState.DONE}
    sim.fault(kind="error_burst", status=503, match="openstack:show", count=1)
    with pytest.raises(Transient):  # nothing read at all: the poll fails, as for one server
        await driver.poll(Submission(Action.STOP, (unread,), "action"))


async def test_a_deleted_server_in_the_listing_is_read_with_a_show(
    sim: Sim, make_os: MakeOs
) -> None:
    """`changes-since` lists deleted servers too; the server's own `show` decides what that
    means, exactly as for a poll without a listing."""
    a, b = pick(sim, "openstack", "ACTIVE", 2)
    driver = make_os(flavour="openstack")
    subs = [await driver.submit(Action.STOP, [sid], ActionParams()) for sid in (a, b)]
    sim.advance(120)
    await driver.submit(Action.DELETE, [b], ActionParams())  # deleted by someone meanwhile
    sim.advance(120)
    since = min(s.since for s in subs if s.since)
    seen = len(sim.requests())
    result = await driver.poll(Submission(Action.STOP, (a, b), "action", since=since))
    log = sim.requests()[seen:]
    assert [e["rate_key"] for e in log] == ["openstack:list", "openstack:show"]
    assert str(log[1]["path"]).endswith(b)
    assert result.outcomes[a].state is OutcomeState.DONE
    alone = await driver.poll(Submission(Action.STOP, (b,), "action"))
    assert result.outcomes[b] == alone.outcomes[b]
