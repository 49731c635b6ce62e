"""The simulator's shared machinery: control plane, rate windows, faults, request ids, drops."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from fleet.simulator.core import HUAWEI, OPENSTACK, admit, ctx_of
from fleet.simulator.faults import parse_rule
from fleet.simulator.limits import Limit, RateLimits
from tests.simulator_fixtures import Sim


def test_sliding_window_refuses_the_51st_call_and_counts_it() -> None:
    limits = RateLimits(limits={"k": Limit(50, 60.0)})
    assert all(limits.admit("k") is None for _ in range(50))
    retry_after = limits.admit("k")
    assert retry_after is not None and 0 < retry_after <= 60.0
    snap = limits.snapshot()["k"]
    assert snap["calls"] == 51 and snap["throttled"] == 1 and snap["max_in_window"] == 50


def test_server_counted_limit_refuses_a_batch_that_would_overflow() -> None:
    limits = RateLimits(limits={"k": Limit(1000, 60.0, "servers")})
    assert limits.admit("k", servers=999) is None
    assert limits.admit("k", servers=2) is not None
    assert limits.admit("k", servers=1) is None


def test_fault_rules_are_validated_by_field() -> None:
    with pytest.raises(ValueError, match="kind"):
        parse_rule({"kind": "meteor"})
    with pytest.raises(ValueError, match="count"):
        parse_rule({"kind": "error_burst", "count": -1})
    with pytest.raises(ValueError, match="unknown fields"):
        parse_rule({"kind": "latency", "speed": 3})


async def _probe(request: web.Request) -> web.Response:
    dialect = request.query.get("dialect", HUAWEI)
    await admit(request, dialect=dialect, rate_key=f"probe:{dialect}", servers=["s1"])
    return web.json_response({"ok": True})


async def test_control_plane_endpoints_and_request_ids(simulator: Sim) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{simulator.base_url}/_sim/endpoints") as resp:
            body = await resp.json()
            assert resp.headers["X-Request-Id"]
    assert body["huawei"]["project_id"] == simulator.world.huawei_project_id
    assert body["openstack"]["auth_url"] == f"{simulator.base_url}/identity/v3"
    assert body["huawei"]["ak"] and body["huawei"]["sk"]


async def test_the_date_header_is_the_simulated_clock(simulator: Sim) -> None:
    """One clock for `Date` and the servers' `updated` (what `changes-since` compares), as in a
    real cloud: a day ahead of this host once the simulated clock has moved a day on."""
    simulator.advance(86400)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{simulator.base_url}/_sim/endpoints") as resp:
            date = email.utils.parsedate_to_datetime(resp.headers["Date"])
    assert abs((date - simulator.world.clock.now()).total_seconds()) < 2
    assert (date - datetime.now(UTC)).total_seconds() > 86000


@pytest.fixture
async def probe_sim(simulator: Sim) -> Sim:
    simulator.running.app.router._frozen = False
    simulator.running.app.router.add_get("/probe", _probe)
    simulator.running.app.router.add_post("/probe", _probe)
    return simulator


async def test_throttled_answers_per_dialect(probe_sim: Sim) -> None:
    probe_sim.set_limit("probe:huawei", 1, 60.0)
    probe_sim.set_limit("probe:openstack", 1, 60.0)
    async with aiohttp.ClientSession() as http:
        for dialect in (HUAWEI, OPENSTACK):
            async with http.get(f"{probe_sim.base_url}/probe?dialect={dialect}") as resp:
                assert resp.status == 200
            async with http.get(f"{probe_sim.base_url}/probe?dialect={dialect}") as resp:
                assert resp.status == 429
                body = await resp.json()
                if dialect == HUAWEI:
                    assert body["error"]["code"] == "Common.1503"
                else:
                    assert int(resp.headers["Retry-After"]) >= 1
                    assert body["overLimit"]["code"] == 429
    stats = ctx_of_sim(probe_sim).limits.snapshot()
    assert stats["probe:huawei"]["throttled"] == 1 and stats["probe:openstack"]["throttled"] == 1


def ctx_of_sim(sim: Sim):  # type: ignore[no-untyped-def]
    return sim.ctx


async def test_error_burst_then_recovery_and_drop(probe_sim: Sim) -> None:
    probe_sim.fault(kind="error_burst", match="probe:*", count=2, status=503)
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(3):
            async with http.get(f"{probe_sim.base_url}/probe") as resp:
                statuses.append(resp.status)
        assert statuses == [503, 503, 200]
        probe_sim.fault(kind="drop", match="probe:*", count=1)
        with pytest.raises(aiohttp.ClientError):
            async with http.post(f"{probe_sim.base_url}/probe") as resp:
                await resp.read()
    log = probe_sim.requests(rate_key="probe:huawei")
    assert [e["status"] for e in log] == [503, 503, 200, 200]
    assert log[-1].get("dropped") is True
    assert log[-1]["server_ids"] == ["s1"]


async def test_clock_advance_and_manual_server_change(simulator: Sim) -> None:
    server_id = simulator.servers("ecs")[0]
    async with aiohttp.ClientSession() as http:
        async with http.patch(
            f"{simulator.base_url}/_sim/servers/{server_id}",
            json={"status": "SHUTOFF", "tags": {"a": "b"}},
        ) as resp:
            assert resp.status == 200
        async with http.post(f"{simulator.base_url}/_sim/clock", json={"advance": -1}) as resp:
            assert resp.status == 400
            assert "advance" in (await resp.json())["error"]
        async with http.post(
            f"{simulator.base_url}/_sim/limits", json={"x:y": {"limit": 0}}
        ) as resp:
            assert resp.status == 400
    server = simulator.world.servers[server_id]
    assert server.status == "SHUTOFF" and server.tags == {"a": "b"}


_ = ctx_of
