"""Operations end to end in one process against the embedded simulator (real loopback HTTP,
SQLite, real drivers, planner, executor and engine): resize per dialect, waves, the error budget,
pause / resume / cancel, and every fault kind the simulator injects.

The simulator's request log (`GET /_sim/requests`) is the witness: which action reached which
server, in which order and when. An action counts as *performed* when its request was answered
2xx (a `drop` fault answers 2xx after acting, then closes the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from fleet.domain import Selector, ServerRef, ServerStatus
from fleet.service import Fleet, open_fleet
from fleet.settings import Settings, load_settings
from jobs.records import Batch, ClaimRequest, NewOperation, OperationView, SubJobRecord
from jobs.states import FINISHED_OPERATIONS, IN_FLIGHT, OperationState, State
from jobs.strategy import Strategy

ROOT = Path(__file__).resolve().parents[2]
Entry = dict[str, Any]

TERMINAL_OPS = FINISHED_OPERATIONS


# --- set-up ----------------------------------------------------------------------------------


def sim_settings(
    tmp_path: Path,
    *,
    speed: float = 200.0,
    timeout: float | None = None,
    world: Path | None = None,
) -> Settings:
    """config/default.toml + config/demo.toml, a fresh SQLite file, no scheduled policies (they
    would start operations of their own), and optionally a short HTTP timeout on every endpoint
    and a world file of the test's own."""
    environ = {
        "FLEET_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}",
        "FLEET_SIMULATOR__SPEED": str(speed),
        "FLEET_ENGINE__POLL_INTERVAL": "0.2",
        "FLEET_ENGINE__IDLE_INTERVAL": "0.05",
        "FLEET_POLICIES__ENABLED": "false",
    }
    if world is not None:
        environ["FLEET_SIMULATOR__WORLD"] = str(world)
    settings = load_settings(
        [ROOT / "config" / "default.toml", ROOT / "config" / "demo.toml"], environ=environ
    )
    if timeout is None:
        return settings
    endpoints = [e.model_copy(update={"timeout": timeout}) for e in settings.endpoints]
    return settings.model_copy(update={"endpoints": endpoints})


@dataclass
class SimControl:
    """The simulator's `/_sim` control plane over HTTP."""

    http: aiohttp.ClientSession
    url: str

    async def _get(self, path: str) -> dict[str, Any]:
        async with self.http.get(f"{self.url}{path}") as resp:
            assert resp.status == 200, await resp.text()
            return cast(dict[str, Any], await resp.json())

    async def requests(self, since: int = 0) -> list[Entry]:
        """The request log (without /_sim calls), in arrival order."""
        return cast(list[Entry], (await self._get(f"/_sim/requests?since={since}"))["requests"])

    async def last_seq(self) -> int:
        return int((await self._get("/_sim/requests"))["last_seq"])

    async def servers(self) -> dict[str, Entry]:
        return {s["id"]: s for s in (await self._get("/_sim/servers"))["servers"]}

    async def fault(self, rule: Entry) -> None:
        async with self.http.post(f"{self.url}/_sim/faults", json=rule) as resp:
            assert resp.status == 201, await resp.text()

    async def faults(self) -> list[Entry]:
        return cast(list[Entry], (await self._get("/_sim/faults"))["faults"])


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    *,
    speed: float = 200.0,
    http_timeout: float | None = None,
    world: Path | None = None,
) -> AsyncIterator[tuple[Fleet, SimControl]]:
    settings = sim_settings(tmp_path, speed=speed, timeout=http_timeout, world=world)
    async with (
        open_fleet(settings) as fleet,
        aiohttp.ClientSession() as http,
    ):
        assert fleet.simulator_url is not None
        yield fleet, SimControl(http, fleet.simulator_url)


async def pick(
    fleet: Fleet, sim: SimControl, endpoint: str, status: ServerStatus, count: int
) -> list[ServerRef]:
    """`count` servers in `status` that an operation acts on (not excluded, not locked), in the
    endpoint's listing order, which is also the planner's (sub-job `seq`) order."""
    world = await sim.servers()
    found = [
        s
        async for s in fleet.drivers[endpoint].list_servers(Selector())
        if s.status is status
        and s.tags.get("fleet-exclude") != "true"
        and not world[s.id]["locked"]
    ]
    assert len(found) >= count, f"{endpoint}: only {len(found)} {status} servers"
    return found[:count]


async def other_flavor(fleet: Fleet, endpoint: str, servers: Iterable[ServerRef]) -> str:
    current = {s.flavor for s in servers}
    choices = sorted(await fleet.drivers[endpoint].flavors() - current)
    assert choices, f"{endpoint}: no flavor other than {current}"
    return choices[0]


async def start_op(
    fleet: Fleet,
    kind: str,
    endpoint: str,
    servers: Sequence[ServerRef],
    params: dict[str, Any] | None = None,
    strategy: Strategy | None = None,
) -> str:
    view, created = await fleet.operations.create(
        NewOperation(
            kind=kind,
            params=params or {},
            selector={"endpoints": [endpoint], "ids": [s.id for s in servers]},
            strategy=strategy or Strategy(),
            reason="test",
            created_by="tests",
        )
    )
    assert created
    return view.operation.id


async def wait_for(
    fleet: Fleet, op_id: str, ready: Callable[[OperationView], bool], seconds: float = 30.0
) -> OperationView:
    async with asyncio.timeout(seconds):
        while True:
            view = await fleet.operations.get(op_id)
            if ready(view):
                return view
            await asyncio.sleep(0.05)


async def wait_terminal(fleet: Fleet, op_id: str, seconds: float = 30.0) -> OperationView:
    return await wait_for(fleet, op_id, lambda v: v.state in TERMINAL_OPS, seconds)


async def subjobs(fleet: Fleet, op_id: str) -> list[SubJobRecord]:
    page = await fleet.operations.subjobs(op_id, limit=1000)
    return sorted(page.items, key=lambda s: s.seq)


def server_of(sj: SubJobRecord) -> str:
    return str(sj.payload["server_id"])


def performed(entry: Entry) -> bool:
    status = entry.get("status")
    return isinstance(status, int) and 200 <= status < 300


def actions_on(log: Iterable[Entry], server_id: str) -> list[str]:
    """The actions performed on `server_id`, in order (reads and job polls left out)."""
    return [
        str(e["action"])
        for e in log
        if performed(e)
        and server_id in e["server_ids"]
        and e["method"] in ("POST", "DELETE")
        and e["action"] is not None
    ]


def sends(log: Iterable[Entry], action: str, server_id: str) -> list[Entry]:
    """Performed requests of `action` that named `server_id`."""
    return [
        e for e in log if e["action"] == action and performed(e) and server_id in e["server_ids"]
    ]


def attempts(log: Iterable[Entry], action: str) -> list[Entry]:
    """Every request of `action`, answered or not."""
    return [e for e in log if e["action"] == action]


def action_calls(log: Iterable[Entry], server_id: str) -> list[Entry]:
    """Every action request (ECS `POST .../cloudservers/action`, Nova `POST .../servers/{id}/
    action`) naming `server_id`, answered or not (a faulted Nova call logs no action name)."""
    return [
        e
        for e in log
        if e["method"] == "POST"
        and str(e["path"]).endswith("/action")
        and server_id in e["server_ids"]
    ]


def epoch(at: datetime) -> float:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


# --- 1. resize per dialect -------------------------------------------------------------------


async def test_ecs_resize_stops_resizes_and_restarts_only_running_servers(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (fleet, sim):
        (up,) = await pick(fleet, sim, "ecs-sim", ServerStatus.RUNNING, 1)
        (down,) = await pick(fleet, sim, "ecs-sim", ServerStatus.STOPPED, 1)
        flavor = await other_flavor(fleet, "ecs-sim", [up, down])
        op_id = await start_op(fleet, "resize", "ecs-sim", [up, down], {"flavor": flavor})
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.SUCCEEDED, await subjobs(fleet, op_id)
        assert done.counts.get(State.SUCCEEDED) == 2

        log = await sim.requests()
        assert actions_on(log, up.id) == ["stop", "resize", "start"]
        assert actions_on(log, down.id) == ["resize"]
        resize = sends(log, "resize", up.id)[0]
        assert resize["path"].endswith(f"/cloudservers/{up.id}/resize")
        assert resize["body"] == {"resize": {"flavorRef": flavor}}

        world = await sim.servers()
        assert (world[up.id]["status"], world[up.id]["flavor"]) == ("ACTIVE", flavor)
        assert (world[down.id]["status"], world[down.id]["flavor"]) == ("SHUTOFF", flavor)
        seen = {s.id: s async for s in fleet.drivers["ecs-sim"].list_servers(Selector())}
        assert (seen[up.id].status, seen[up.id].flavor) == (ServerStatus.RUNNING, flavor)
        assert (seen[down.id].status, seen[down.id].flavor) == (ServerStatus.STOPPED, flavor)


async def test_easystack_servers_are_polled_together_by_what_changed(tmp_path: Path) -> None:
    """One call per server, but their status is read for many at once: a `changes-since`
    listing from the cloud's own clock, not one `show` per server and poll."""
    async with running(tmp_path) as (fleet, sim):
        servers = await pick(fleet, sim, "easystack-sim", ServerStatus.RUNNING, 8)
        first = await sim.last_seq()
        op_id = await start_op(fleet, "stop", "easystack-sim", servers)
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.SUCCEEDED, await subjobs(fleet, op_id)

        log = await sim.requests(since=first)
        world = await sim.servers()
        assert all(world[s.id]["status"] == "SHUTOFF" for s in servers)
        assert all(len(sends(log, "os-stop", s.id)) == 1 for s in servers)
        listings = [e for e in log if "changes-since=" in str(e["query"])]
        shows = [e for e in log if e["rate_key"] == "openstack:show"]
        assert listings and len(listings) + len(shows) < len(servers), (listings, shows)


async def test_easystack_resize_is_confirmed_and_keeps_the_power_state(tmp_path: Path) -> None:
    async with running(tmp_path) as (fleet, sim):
        (up,) = await pick(fleet, sim, "easystack-sim", ServerStatus.RUNNING, 1)
        (down,) = await pick(fleet, sim, "easystack-sim", ServerStatus.STOPPED, 1)
        flavor = await other_flavor(fleet, "easystack-sim", [up, down])
        op_id = await start_op(fleet, "resize", "easystack-sim", [up, down], {"flavor": flavor})
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.SUCCEEDED, await subjobs(fleet, op_id)

        log = await sim.requests()
        for server in (up, down):
            assert actions_on(log, server.id) == ["resize", "confirmResize"]
        world = await sim.servers()
        assert (world[up.id]["status"], world[up.id]["flavor"]) == ("ACTIVE", flavor)
        assert (world[down.id]["status"], world[down.id]["flavor"]) == ("SHUTOFF", flavor)
        assert not [s for s in world.values() if s["status"] == "VERIFY_RESIZE"]


async def test_easystack_live_resize_when_asked_sends_no_stop(tmp_path: Path) -> None:
    async with running(tmp_path) as (fleet, sim):
        (up,) = await pick(fleet, sim, "easystack-sim", ServerStatus.RUNNING, 1)
        flavor = await other_flavor(fleet, "easystack-sim", [up])
        op_id = await start_op(
            fleet, "resize", "easystack-sim", [up], {"flavor": flavor, "live": True}
        )
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.SUCCEEDED, await subjobs(fleet, op_id)

        log = await sim.requests()
        assert actions_on(log, up.id) == ["live_resize"]
        assert not [e for e in log if e["method"] == "POST" and up.id in e["server_ids"]][1:]
        world = await sim.servers()
        assert (world[up.id]["status"], world[up.id]["flavor"]) == ("ACTIVE", flavor)


async def test_easystack_live_resize_falls_back_to_offline_for_a_stopped_server(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (fleet, sim):
        (down,) = await pick(fleet, sim, "easystack-sim", ServerStatus.STOPPED, 1)
        flavor = await other_flavor(fleet, "easystack-sim", [down])
        op_id = await start_op(
            fleet, "resize", "easystack-sim", [down], {"flavor": flavor, "live": True}
        )
        done = await wait_terminal(fleet, op_id)
        (row,) = await subjobs(fleet, op_id)
        assert row.payload["recipe"] == "resize/nova"  # the live recipe needs RUNNING
        log = await sim.requests()
        posts = [(e["action"], e["status"]) for e in action_calls(log, down.id)]
        assert posts == [("resize", 202), ("confirmResize", 202)]  # not [("live_resize", 409)]
        assert done.state is OperationState.SUCCEEDED, row
        world = await sim.servers()
        assert (world[down.id]["status"], world[down.id]["flavor"]) == ("SHUTOFF", flavor)


async def test_bms_resize_is_refused_at_planning_and_sends_nothing(tmp_path: Path) -> None:
    async with running(tmp_path) as (fleet, sim):
        (server,) = await pick(fleet, sim, "bms-sim", ServerStatus.RUNNING, 1)
        flavor = await other_flavor(fleet, "bms-sim", [server])
        before = await sim.last_seq()
        op_id = await start_op(fleet, "resize", "bms-sim", [server], {"flavor": flavor})
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.REFUSED
        reason = done.operation.refused_reason or ""
        assert "bms-sim" in reason and "resize" in reason, reason
        assert await subjobs(fleet, op_id) == []
        assert await sim.requests(before) == []  # refused before even listing the endpoint
        assert (await sim.servers())[server.id]["flavor"] == server.flavor


async def test_a_resize_not_naming_bms_skips_its_servers_and_resizes_the_rest(
    tmp_path: Path,
) -> None:
    """Only a selector that names the BMS endpoint is refused; one across every endpoint skips
    the BMS servers ("unsupported: ...") and resizes the others."""
    async with running(tmp_path) as (fleet, sim):
        (bms,) = await pick(fleet, sim, "bms-sim", ServerStatus.RUNNING, 1)
        (ecs,) = await pick(fleet, sim, "ecs-sim", ServerStatus.STOPPED, 1)
        flavor = await other_flavor(fleet, "ecs-sim", [ecs])
        view, _ = await fleet.operations.create(
            NewOperation(
                kind="resize",
                params={"flavor": flavor},
                selector={"ids": [bms.id, ecs.id]},
                created_by="tests",
            )
        )
        done = await wait_terminal(fleet, view.operation.id)
        assert done.state is OperationState.SUCCEEDED, done.operation.refused_reason
        rows = {server_of(s): s for s in await subjobs(fleet, view.operation.id)}
        assert rows[bms.id].state is State.SKIPPED
        assert (rows[bms.id].reason or "").startswith("unsupported:"), rows[bms.id].reason
        assert rows[ecs.id].state is State.SUCCEEDED
        world = await sim.servers()
        assert world[ecs.id]["flavor"] == flavor
        assert world[bms.id]["flavor"] == bms.flavor


async def test_a_parameter_an_endpoint_cannot_take_refuses_even_unnamed(tmp_path: Path) -> None:
    """Skipping is for a dialect without the API at all (BMS resize); a live resize of ECS
    servers (ECS has resize, but not live) is refused, not quietly skipped."""
    async with running(tmp_path) as (fleet, sim):
        (ecs,) = await pick(fleet, sim, "ecs-sim", ServerStatus.RUNNING, 1)
        flavor = await other_flavor(fleet, "ecs-sim", [ecs])
        before = await sim.last_seq()
        view, _ = await fleet.operations.create(
            NewOperation(
                kind="resize",
                params={"flavor": flavor, "live": True},
                selector={"ids": [ecs.id]},
                created_by="tests",
            )
        )
        done = await wait_terminal(fleet, view.operation.id)
        assert done.state is OperationState.REFUSED
        assert "ecs-sim" in (done.operation.refused_reason or "")
        sent = [e for e in await sim.requests(before) if e["method"] == "POST"]
        assert [e for e in sent if not e["path"].endswith("/auth/tokens")] == []


# --- 2. waves --------------------------------------------------------------------------------


def stop_times(log: Iterable[Entry], servers: Iterable[str]) -> dict[str, list[float]]:
    return {sid: [float(e["time"]) for e in sends(log, "stop", sid)] for sid in servers}


@pytest.mark.parametrize("waves", [(), ("50%",)])
async def test_endpoints_keep_the_selector_order_only_when_waves_need_it(
    tmp_path: Path, waves: tuple[str, ...]
) -> None:
    """The ECS listing answers last. With waves the ECS servers still come first (the selector
    names ECS first), so a wave is the same whichever cloud answers first; without waves the rows
    are planned as the clouds answer, EasyStack's while ECS is still listing."""
    async with running(tmp_path) as (fleet, sim):
        await sim.fault({"kind": "latency", "match": "huawei-nova:list", "ms": 300})
        view, _ = await fleet.operations.create(
            NewOperation(
                kind="reboot",
                selector={"endpoints": ["ecs-sim", "easystack-sim"]},
                strategy=Strategy.from_json({"waves": list(waves)}),
                dry_run=True,
                created_by="tests",
            )
        )
        await wait_terminal(fleet, view.operation.id)
        rows = [s for s in await subjobs(fleet, view.operation.id) if s.state is State.PENDING]
        endpoints = [str(s.payload["endpoint"]) for s in rows]
        first = "ecs-sim" if waves else "easystack-sim"
        cut = endpoints.count(first)
        assert cut and set(endpoints[:cut]) == {first}, endpoints
        assert len(set(endpoints[cut:])) == 1 and first not in endpoints[cut:]


async def test_waves_run_one_after_the_other(tmp_path: Path) -> None:
    async with running(tmp_path) as (fleet, sim):
        servers = await pick(fleet, sim, "ecs-sim", ServerStatus.RUNNING, 5)
        op_id = await start_op(fleet, "stop", "ecs-sim", servers, strategy=Strategy(waves=(2, 3)))
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.SUCCEEDED
        rows = await subjobs(fleet, op_id)
        first, second = rows[:2], rows[2:]
        assert len(second) == 3

        times = stop_times(await sim.requests(), (server_of(s) for s in rows))
        assert all(len(t) == 1 for t in times.values()), times
        second_starts = min(times[server_of(s)][0] for s in second)
        assert max(times[server_of(s)][0] for s in first) < second_starts
        # Wave 1 was finished (its servers stopped), not merely sent, before wave 2 was sent.
        assert max(epoch(s.updated_at) for s in first) <= second_starts


async def test_pause_after_wave_holds_wave_two_until_resumed(tmp_path: Path) -> None:
    async with running(tmp_path) as (fleet, sim):
        servers = await pick(fleet, sim, "ecs-sim", ServerStatus.RUNNING, 5)
        strategy = Strategy.from_json({"waves": ["40%", "60%"], "pause_after_wave": True})
        op_id = await start_op(fleet, "stop", "ecs-sim", servers, strategy=strategy)
        paused = await wait_for(fleet, op_id, lambda v: v.state is OperationState.PAUSED)
        await asyncio.sleep(0.8)  # several dispatch rounds: none may send wave 2
        paused = await fleet.operations.get(op_id)
        assert paused.state is OperationState.PAUSED and paused.operation.paused
        assert paused.counts.get(State.SUCCEEDED) == 2 and paused.counts.get(State.PENDING) == 3
        rows = await subjobs(fleet, op_id)
        first, second = rows[:2], rows[2:]
        assert {s.state for s in first} == {State.SUCCEEDED}
        log = await sim.requests()
        assert [len(v) for v in stop_times(log, map(server_of, first)).values()] == [1, 1]
        assert not any(stop_times(log, map(server_of, second)).values())

        resumed_at = time.time()
        await fleet.operations.resume(op_id, by="tests")
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.SUCCEEDED
        times = stop_times(await sim.requests(), map(server_of, rows))
        assert all(len(t) == 1 for t in times.values()), times
        assert all(times[server_of(s)][0] >= resumed_at for s in second)


# --- 3. the error budget ---------------------------------------------------------------------


async def test_max_errors_exceeded_stops_and_leaves_the_rest_alone(tmp_path: Path) -> None:
    async with running(tmp_path) as (fleet, sim):
        servers = await pick(fleet, sim, "ecs-sim", ServerStatus.RUNNING, 6)
        failing = [s.id for s in servers[:2]]
        await sim.fault({"kind": "job_fail", "server_ids": failing, "error_code": "Ecs.0013"})
        strategy = Strategy(max_in_flight=1, max_errors=1)
        op_id = await start_op(fleet, "stop", "ecs-sim", servers, strategy=strategy)
        done = await wait_terminal(fleet, op_id)
        rows = await subjobs(fleet, op_id)
        assert [server_of(s) for s in rows[:2]] == failing  # planned in listing order
        assert done.state is OperationState.STOPPED, rows
        assert done.operation.halted_reason is not None
        assert done.counts.get(State.FAILED) == 2
        assert done.counts.get(State.CANCELLED) == 4
        log = await sim.requests()
        for sj in rows[2:]:
            assert sj.state is State.CANCELLED
            assert actions_on(log, server_of(sj)) == [], server_of(sj)
        world = await sim.servers()
        assert all(world[server_of(s)]["status"] == "ACTIVE" for s in rows)


async def test_failures_within_max_errors_complete_with_failures(tmp_path: Path) -> None:
    async with running(tmp_path) as (fleet, sim):
        servers = await pick(fleet, sim, "ecs-sim", ServerStatus.RUNNING, 5)
        failing = {servers[1].id, servers[3].id}
        await sim.fault(
            {"kind": "job_fail", "server_ids": sorted(failing), "error_code": "Ecs.0013"}
        )
        op_id = await start_op(fleet, "stop", "ecs-sim", servers, strategy=Strategy(max_errors=3))
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.COMPLETED_WITH_FAILURES
        rows = await subjobs(fleet, op_id)
        assert {server_of(s) for s in rows if s.state is State.FAILED} == failing
        assert {s.error_code for s in rows if s.state is State.FAILED} == {"Ecs.0013"}
        assert done.counts.get(State.SUCCEEDED) == 3
        world = await sim.servers()
        for sj in rows:
            expected = "ACTIVE" if server_of(sj) in failing else "SHUTOFF"
            assert world[server_of(sj)]["status"] == expected


# --- 4. pause, resume, cancel ----------------------------------------------------------------


def in_flight(view: OperationView) -> int:
    return sum(view.counts.get(s, 0) for s in IN_FLIGHT)


async def test_pause_stops_dispatch_and_resume_completes(tmp_path: Path) -> None:
    async with running(tmp_path, speed=40.0) as (fleet, sim):  # a stop takes 0.5 s
        servers = await pick(fleet, sim, "ecs-sim", ServerStatus.RUNNING, 6)
        op_id = await start_op(
            fleet, "stop", "ecs-sim", servers, strategy=Strategy(max_in_flight=1)
        )
        # Paused while the second stop is under way (the in-flight cap holds every other one
        # back), not at the instant a stop completes: that race is the test below.
        await wait_for(
            fleet,
            op_id,
            lambda v: v.counts.get(State.SUCCEEDED, 0) >= 1 and v.counts.get(State.AWAITING) == 1,
        )
        await fleet.operations.pause(op_id, by="tests")
        view = await wait_for(fleet, op_id, lambda v: in_flight(v) == 0)
        assert view.state is OperationState.PAUSED
        pending = view.counts.get(State.PENDING, 0)
        assert pending >= 1
        sent = len(attempts(await sim.requests(), "stop"))
        await asyncio.sleep(1.0)  # twenty dispatch idles, twice a stop
        view = await fleet.operations.get(op_id)
        assert view.state is OperationState.PAUSED
        assert view.counts.get(State.PENDING, 0) == pending
        assert len(attempts(await sim.requests(), "stop")) == sent

        await fleet.operations.resume(op_id, by="tests")
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.SUCCEEDED
        log = await sim.requests()
        assert all(len(sends(log, "stop", s.id)) == 1 for s in servers)


async def test_pause_wins_over_a_dispatch_round_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(tmp_path) as (fleet, sim):
        servers = await pick(fleet, sim, "ecs-sim", ServerStatus.RUNNING, 3)
        claim = fleet.store.claim_batches
        paused: list[str] = []

        async def pause_then_claim(
            request: ClaimRequest, max_batch: Sequence[int], max_groups: int = 1
        ) -> list[Batch]:
            # The dispatcher has listed the operation as claimable; the user pauses it now.
            if not paused:
                await fleet.operations.pause(request.operation_id, by="tests")
                paused.append(request.operation_id)
            return await claim(request, max_batch, max_groups)

        monkeypatch.setattr(fleet.store, "claim_batches", pause_then_claim)
        op_id = await start_op(fleet, "stop", "ecs-sim", servers)
        await wait_for(fleet, op_id, lambda v: bool(paused))
        await asyncio.sleep(0.5)
        view = await fleet.operations.get(op_id)
        log = await sim.requests()
        assert attempts(log, "stop") == [], "sent after pause() returned"
        assert view.state is OperationState.PAUSED
        assert view.counts.get(State.PENDING) == 3, view.counts

        await fleet.operations.resume(op_id, by="tests")
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.SUCCEEDED


async def test_cancel_ends_cancelled_and_never_sends_to_the_rest(tmp_path: Path) -> None:
    async with running(tmp_path, speed=40.0) as (fleet, sim):
        servers = await pick(fleet, sim, "ecs-sim", ServerStatus.RUNNING, 6)
        op_id = await start_op(
            fleet, "stop", "ecs-sim", servers, strategy=Strategy(max_in_flight=1)
        )
        await wait_for(fleet, op_id, lambda v: v.counts.get(State.SUCCEEDED, 0) >= 1)
        await fleet.operations.cancel(op_id, by="tests")
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.CANCELLED
        rows = await subjobs(fleet, op_id)
        cancelled = [s for s in rows if s.state is State.CANCELLED]
        assert len(cancelled) >= 3, rows
        assert {s.state for s in rows} <= {State.SUCCEEDED, State.CANCELLED}
        await asyncio.sleep(0.5)  # nothing may leave after the end either
        log = await sim.requests()
        for sj in rows:
            expected = 1 if sj.state is State.SUCCEEDED else 0
            assert len(attempts([e for e in log if server_of(sj) in e["server_ids"]], "stop")) == (
                expected
            ), server_of(sj)
        world = await sim.servers()
        assert all(world[server_of(s)]["status"] == "ACTIVE" for s in cancelled)


@pytest.mark.parametrize(
    ("endpoint", "recipe"),
    [("ecs-sim", ["stop", "resize", "start"]), ("easystack-sim", ["resize", "confirmResize"])],
)
async def test_a_cancel_mid_resize_finishes_the_begun_server(
    tmp_path: Path, endpoint: str, recipe: list[str]
) -> None:
    """A cancel while a server's resize is under way (ECS: stopped for it; Nova: about to be
    confirmed) lets that server's recipe finish: it ends running on the new flavor, not stopped
    or in VERIFY_RESIZE; the servers not begun are cancelled untouched."""
    async with running(tmp_path, speed=40.0) as (fleet, sim):
        servers = await pick(fleet, sim, endpoint, ServerStatus.RUNNING, 3)
        flavor = await other_flavor(fleet, endpoint, servers)
        op_id = await start_op(
            fleet, "resize", endpoint, servers, {"flavor": flavor}, Strategy(max_in_flight=1)
        )
        await wait_for(fleet, op_id, lambda v: v.counts.get(State.AWAITING) == 1)
        await fleet.operations.cancel(op_id, by="tests")
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.CANCELLED
        rows = {server_of(s): s for s in await subjobs(fleet, op_id)}
        assert done.counts == {State.SUCCEEDED: 1, State.CANCELLED: 2}, rows
        (begun,) = (i for i, s in rows.items() if s.state is State.SUCCEEDED)
        rest = [i for i in rows if i != begun]
        await asyncio.sleep(0.3)  # nothing may leave after the end either
        log = await sim.requests()
        assert actions_on(log, begun) == recipe
        assert all(actions_on(log, i) == [] for i in rest)
        world = await sim.servers()
        assert (world[begun]["status"], world[begun]["flavor"]) == ("ACTIVE", flavor)
        assert all(world[i]["status"] == "ACTIVE" for i in rest)


async def test_a_cancel_before_any_call_was_accepted_cancels_a_stopped_servers_resize(
    tmp_path: Path,
) -> None:
    """A stopped server's ECS resize passes over "stop if running" without a call: that alone
    does not begin it, so a cancel while its resize call is still being refused cancels it."""
    async with running(tmp_path, speed=40.0) as (fleet, sim):
        servers = await pick(fleet, sim, "ecs-sim", ServerStatus.STOPPED, 3)
        flavor = await other_flavor(fleet, "ecs-sim", servers)
        # every resize call is refused, retryably (a 503 says it was not taken): nothing resized
        await sim.fault(
            {"kind": "error_burst", "match": "huawei-ecs:resize", "status": 503, "count": 0}
        )
        op_id = await start_op(fleet, "resize", "ecs-sim", servers, {"flavor": flavor})
        async with asyncio.timeout(20):  # every row at the resize, refused at least once
            while True:
                rows = await subjobs(fleet, op_id)
                if rows and all(r.step == 1 and r.error_code for r in rows):
                    break
                await asyncio.sleep(0.05)
        await fleet.operations.cancel(op_id, by="tests")
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.CANCELLED
        assert done.counts == {State.CANCELLED: 3}
        await asyncio.sleep(0.3)  # nothing may leave after the end either
        log = await sim.requests()
        assert all(actions_on(log, s.id) == [] for s in servers)
        world = await sim.servers()
        assert all(world[s.id]["flavor"] != flavor for s in servers)


# --- 5. every fault kind ---------------------------------------------------------------------

ECS_ACTION = "huawei-ecs:action"  # the simulator's rate key of ECS batch start/stop/reboot
# Huawei's throttling answer names no delay, so the limiter pauses the key for a quarter of its
# 60 s budget period (jobs/ratelimit.py, by design): the throttle case runs on EasyStack, whose
# 429 carries `Retry-After: 1`.
TRANSIENT_FAULTS: dict[str, tuple[str, Entry]] = {
    "error_burst": ("ecs-sim", {"kind": "error_burst", "match": ECS_ACTION, "status": 503}),
    "latency": ("ecs-sim", {"kind": "latency", "match": ECS_ACTION, "ms": 400}),
    "timeout": ("ecs-sim", {"kind": "timeout", "match": ECS_ACTION, "seconds": 2.0}),
    "drop": ("ecs-sim", {"kind": "drop", "match": ECS_ACTION}),
    "throttle": ("easystack-sim", {"kind": "throttle", "match": "openstack:action"}),
}
REFUSING = {"error_burst", "timeout", "throttle"}  # the faulted send does not act


@pytest.mark.parametrize("kind", sorted(TRANSIENT_FAULTS))
async def test_transient_fault_every_server_stopped_once(tmp_path: Path, kind: str) -> None:
    endpoint, rule = TRANSIENT_FAULTS[kind]
    async with running(tmp_path, http_timeout=0.75) as (fleet, sim):
        servers = await pick(fleet, sim, endpoint, ServerStatus.RUNNING, 3)
        await sim.fault({**rule, "count": 1})
        op_id = await start_op(fleet, "stop", endpoint, servers)
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.SUCCEEDED, await subjobs(fleet, op_id)
        assert done.counts.get(State.SUCCEEDED) == 3

        (fired,) = await sim.faults()
        assert fired["fired"] == 1, fired
        log = await sim.requests()
        calls = {s.id: action_calls(log, s.id) for s in servers}
        for server in servers:
            assert len([e for e in calls[server.id] if performed(e)]) == 1, calls[server.id]
        refused = {e["seq"] for c in calls.values() for e in c if not performed(e)}
        assert len(refused) == (1 if kind in REFUSING else 0), calls
        if kind == "drop":
            dropped = {e["seq"] for c in calls.values() for e in c if e.get("dropped")}
            assert len(dropped) == 1  # acted, answer lost: verified on the cloud, not re-sent
        world = await sim.servers()
        assert all(world[s.id]["status"] == "SHUTOFF" for s in servers)


async def test_job_fail_fault_fails_that_server_only(tmp_path: Path) -> None:
    async with running(tmp_path) as (fleet, sim):
        servers = await pick(fleet, sim, "ecs-sim", ServerStatus.RUNNING, 3)
        victim = servers[1].id
        await sim.fault({"kind": "job_fail", "server_ids": [victim], "error_code": "Ecs.0013"})
        op_id = await start_op(fleet, "stop", "ecs-sim", servers)
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.COMPLETED_WITH_FAILURES
        rows = {server_of(s): s for s in await subjobs(fleet, op_id)}
        assert rows[victim].state is State.FAILED and rows[victim].error_code == "Ecs.0013"
        assert {s.state for i, s in rows.items() if i != victim} == {State.SUCCEEDED}
        log = await sim.requests()
        assert all(len(sends(log, "stop", s.id)) == 1 for s in servers)
        world = await sim.servers()
        assert world[victim]["status"] == "ACTIVE"


# --- 6. a multi-step resize that fails leaves the server as it was ---------------------------


async def wait_subjob(
    fleet: Fleet, op_id: str, ready: Callable[[SubJobRecord], bool], seconds: float = 30.0
) -> SubJobRecord:
    """The operation's first sub-job, once `ready` holds for it."""
    async with asyncio.timeout(seconds):
        while True:
            rows = await subjobs(fleet, op_id)  # none until the operation is planned
            if rows and ready(rows[0]):
                return rows[0]
            await asyncio.sleep(0.02)


async def resize_under_way(
    fleet: Fleet, sim: SimControl, endpoint: str
) -> tuple[ServerRef, str, str]:
    """One running server of `endpoint` being resized to another flavor, once the call of its
    first step was accepted (the next action on the server is the second step):
    (server, flavor, operation id)."""
    (up,) = await pick(fleet, sim, endpoint, ServerStatus.RUNNING, 1)
    flavor = await other_flavor(fleet, endpoint, [up])
    op_id = await start_op(fleet, "resize", endpoint, [up], {"flavor": flavor})
    row = await wait_subjob(fleet, op_id, lambda s: s.state is State.AWAITING)
    assert row.step == 0, row
    return up, flavor, op_id


def refused_posts(log: Iterable[Entry], server_id: str) -> list[Entry]:
    """Action calls naming `server_id` that were answered with an error."""
    return [e for e in action_calls(log, server_id) if not performed(e)]


async def test_ecs_resize_job_that_fails_starts_the_server_again(tmp_path: Path) -> None:
    """The resize's cloud job fails (Ecs.0013) after the server was stopped for it: the server
    is started again (it was running), and the sub-job fails with the resize's own error."""
    async with running(tmp_path, speed=40.0) as (fleet, sim):
        up, _flavor, op_id = await resize_under_way(fleet, sim, "ecs-sim")
        # the stop was accepted (its transition began then): the next action, the resize, fails
        await sim.fault(
            {
                "kind": "job_fail",
                "server_ids": [up.id],
                "error_code": "Ecs.0013",
                "reason": "Insufficient capacity for the flavor.",
            }
        )
        done = await wait_terminal(fleet, op_id)
        world = await sim.servers()
        assert (world[up.id]["status"], world[up.id]["flavor"]) == ("ACTIVE", up.flavor)
        log = await sim.requests()
        assert actions_on(log, up.id) == ["stop", "resize", "start"]
        (row,) = await subjobs(fleet, op_id)
        assert done.state is OperationState.COMPLETED_WITH_FAILURES, row
        assert (row.state, row.error_code) == (State.FAILED, "Ecs.0013"), row
        assert row.error_message is not None
        assert row.error_message.startswith("Insufficient capacity for the flavor."), row
        assert "started again" in row.error_message, row
        assert row.reason is not None and "starting the server again" in row.reason, row


async def test_ecs_resize_refused_at_submit_starts_the_server_again(tmp_path: Path) -> None:
    """The resize call itself is refused for good (Ecs.0029, a flavor the cloud does not have:
    the API would have refused it, the engine's own entry does not check): the server stopped
    for it is started again, and the sub-job fails with the refusal's code."""
    async with running(tmp_path) as (fleet, sim):
        (up,) = await pick(fleet, sim, "ecs-sim", ServerStatus.RUNNING, 1)
        op_id = await start_op(fleet, "resize", "ecs-sim", [up], {"flavor": "no.such.flavor"})
        done = await wait_terminal(fleet, op_id)
        world = await sim.servers()
        assert (world[up.id]["status"], world[up.id]["flavor"]) == ("ACTIVE", up.flavor)
        log = await sim.requests()
        assert actions_on(log, up.id) == ["stop", "start"]
        refused = [e for e in attempts(log, "resize") if not performed(e)]
        assert [e["status"] for e in refused] == [400]
        (row,) = await subjobs(fleet, op_id)
        assert done.state is OperationState.COMPLETED_WITH_FAILURES, row
        assert (row.state, row.error_code) == (State.FAILED, "Ecs.0029"), row
        assert row.error_message is not None and "started again" in row.error_message, row


@pytest.mark.parametrize("status", [400, 409])
async def test_nova_confirm_refused_at_submit_reverts_the_resize(
    tmp_path: Path, status: int
) -> None:
    """The confirmResize call is refused (400; or 409 with the server still settled in
    VERIFY_RESIZE) after the resize: the resize is reverted, not left in VERIFY_RESIZE, and the
    sub-job fails with the reason."""
    async with running(tmp_path, speed=40.0) as (fleet, sim):
        up, _flavor, op_id = await resize_under_way(fleet, sim, "easystack-sim")
        # the resize was accepted: the next action call on the server is the confirm
        await sim.fault(
            {"kind": "error_burst", "match": "openstack:action", "status": status, "count": 1}
        )
        done = await wait_terminal(fleet, op_id)
        world = await sim.servers()
        assert (world[up.id]["status"], world[up.id]["flavor"]) == ("ACTIVE", up.flavor)
        log = await sim.requests()
        assert actions_on(log, up.id) == ["resize", "revertResize"]
        assert [e["status"] for e in refused_posts(log, up.id)] == [status]
        (row,) = await subjobs(fleet, op_id)
        assert done.state is OperationState.COMPLETED_WITH_FAILURES, row
        assert (row.state, row.error_code) == (State.FAILED, "resize_reverted"), row
        assert row.reason is not None and row.reason.startswith("confirm_resize failed"), row
        assert row.error_message is not None and "reverted" in row.error_message, row


async def test_ecs_start_again_refused_too_reports_the_resize_error(tmp_path: Path) -> None:
    """The server is locked while it is stopped for the resize: the resize is refused (Ecs.0605)
    and so is the start that would undo the stop. The sub-job fails with the resize's refusal,
    naming the start's as well; nothing else is tried."""
    async with running(tmp_path, speed=40.0) as (fleet, sim):
        up, _flavor, op_id = await resize_under_way(fleet, sim, "ecs-sim")
        async with sim.http.patch(f"{sim.url}/_sim/servers/{up.id}", json={"locked": True}) as r:
            assert r.status == 200, await r.text()
        done = await wait_terminal(fleet, op_id)
        log = await sim.requests()
        assert actions_on(log, up.id) == ["stop"]
        assert [e["action"] for e in log if e["action"] in ("resize", "start")] == [
            "resize",
            "start",
        ]
        (row,) = await subjobs(fleet, op_id)
        assert done.state is OperationState.COMPLETED_WITH_FAILURES, row
        assert (row.state, row.error_code, row.step) == (State.FAILED, "Ecs.0605", 3), row
        assert row.error_message is not None and "start to compensate failed" in row.error_message
        world = await sim.servers()
        assert (world[up.id]["status"], world[up.id]["flavor"]) == ("SHUTOFF", up.flavor)
