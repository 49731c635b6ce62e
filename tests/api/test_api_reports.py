"""`GET /v1/reports/savings`, `GET /v1/drift`, `fleet report savings` and `fleet drift` over a
real service: an operation stops a server on the simulator, someone starts it in the console,
the leader's sweep tracks both."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.conftest import Api, api_settings, serving
from tests.api.test_client import fleet


@pytest.fixture
async def tracked(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Api]:
    prices = {"FLEET_PRICES__CURRENCY": "EUR", "FLEET_PRICES__HOURLY__ECS-SIM__*": "0.25"}
    settings = api_settings(tmp_path, sqlite_url, FLEET_TRACKING__CHECK_INTERVAL="0.001", **prices)
    assert settings.prices.hourly == {"ecs-sim": {"*": 0.25}}
    async with serving(settings) as running:
        yield running


async def _stopped_then_started_by_hand(api: Api) -> str:
    server = (await api.servers("ecs-sim", status="running"))[0]
    body = {"action": "stop", "targets": {"endpoints": ["ecs-sim"], "ids": [server["id"]]}}
    reply = await api.post("/v1/operations", body)
    assert reply.status == 202, reply.body
    assert (await api.wait(str(reply.body["id"])))["state"] == "succeeded"
    policies = api.fleet.policies
    assert policies is not None
    await policies.tick()  # the leader's sweep: the stop is followed
    url = f"{api.fleet.simulator_url}/_sim/servers/{server['id']}"
    async with api.client.session.patch(url, json={"status": "ACTIVE"}) as resp:
        assert resp.status == 200
    await policies.tick()  # ...and the start by hand found
    return str(server["id"])


async def test_savings_and_drift_of_a_stop_undone_by_hand(tracked: Api) -> None:
    server_id = await _stopped_then_started_by_hand(tracked)
    reply = await tracked.get("/v1/reports/savings", params={"group_by": "endpoint"})
    assert reply.status == 200, reply.body
    (row,) = reply.body["rows"]  # type: ignore[misc]
    assert row["key"] == "ecs-sim" and row["servers"] == 1 and row["still_stopped"] == 0
    assert 0 < row["hours"] < 0.1 and row["bound_hours"] == 0  # the cloud recorded the start
    assert reply.body["currency"] == "EUR" and reply.body["total"]["hours"] == row["hours"]
    assert reply.body["assumptions"]

    drift = await tracked.get("/v1/drift")
    assert drift.status == 200, drift.body
    (item,) = drift.body["items"]  # type: ignore[misc]
    assert (item["server_id"], item["kind"], item["desired"]) == (server_id, "left", "stopped")
    assert item["policy"] is None and item["enforcement"] is None

    code, out, err = await fleet(tracked, "report", "savings", "--group-by", "endpoint", "--csv")
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:3] == ["endpoint", "servers", "hours"] and rows[0][-1] == "currency"
    assert rows[1][:2] == ["ecs-sim", "1"] and rows[2][0] == "total" and rows[2][-1] == "EUR"
    code, out, err = await fleet(tracked, "report", "savings", role="viewer")
    assert code == 0 and "(operations)" in out and "EUR" in out, err
    code, out, err = await fleet(tracked, "drift", role="viewer")
    assert code == 0, err
    assert out.splitlines()[0].split()[:4] == ["detected", "endpoint", "server", "kind"]
    assert server_id in out and "left" in out


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ({"from": "2026-01-01T00:00:00"}, "from"),  # no time zone
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"group_by": "server"}, "group_by"),
        ({"start": "2026-01-01T00:00:00Z"}, "start"),
    ],
)
async def test_a_bad_report_query_names_the_field(
    api: Api, params: dict[str, str], field: str
) -> None:
    reply = await api.get("/v1/reports/savings", params=params)
    assert reply.status == 422, reply.body
    assert reply.body["field"] == field


async def test_a_bad_window_is_a_usage_error_of_the_cli(api: Api) -> None:
    code, _, err = await fleet(api, "report", "savings", "--from", "2026-02-01T00:00:00Z",
                               "--to", "2026-01-01T00:00:00Z")  # fmt: skip
    assert code == 2 and "from: must be before to" in err
