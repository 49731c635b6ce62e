"""`GET /metrics`: the figures, the format negotiated by Accept, and counters that never go down."""

from __future__ import annotations

import asyncio
import itertools
import re
from pathlib import Path

import pytest

from fleet.api import metrics
from fleet.service import Fleet, open_fleet
from fleet.settings import Settings
from tests.api.conftest import Api, api_settings

SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+]+$')
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


async def scrape(api: Api, accept: str | None = None) -> tuple[str, str]:
    headers = {**api.auth("viewer"), **({"Accept": accept} if accept else {})}
    async with api.client.get("/metrics", headers=headers) as resp:
        assert resp.status == 200
        return resp.headers["Content-Type"], await resp.text()


def samples(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def counters(text: str) -> dict[str, float]:
    """Every sample of every family typed `counter`, by its name and labels."""
    kinds = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    out: dict[str, float] = {}
    for line in samples(text):
        series, value = line.rsplit(" ", 1)
        name = series.split("{", 1)[0]
        if kinds.get(name) == "counter" or kinds.get(name.removesuffix("_total")) == "counter":
            out[series] = float(value)
    return out


async def test_metrics_count_operations_subjobs_calls_and_limiter(api_db: Api) -> None:
    api = api_db
    servers = await api.servers("bms-sim", status="running")
    ids = [str(s["id"]) for s in servers[:2]]
    made = await api.post(
        "/v1/operations", {"action": "stop", "targets": {"endpoints": ["bms-sim"], "ids": ids}}
    )
    await api.wait(str(made.body["id"]))
    await api.post(
        "/v1/operations", {**{"action": "start", "targets": {"ids": ids}}, "dry_run": True}
    )
    content_type, text = await scrape(api)
    assert content_type.startswith("text/plain; version=0.0.4")
    lines = samples(text)
    assert all(SAMPLE.match(line) for line in lines), [s for s in lines if not SAMPLE.match(s)]
    me = f'worker="{api.fleet.runtime.config.worker}"'
    assert 'fleet_operations{state="succeeded"} 1.0' in lines
    assert 'fleet_operations{state="planned"} 1.0' in lines
    assert 'fleet_subjobs{state="succeeded"} 2.0' in lines
    assert 'fleet_subjobs{state="pending"} 0.0' in lines  # the dry run's are left out
    calls = [s for s in lines if s.startswith("fleet_cloud_calls_total{")]
    assert any(
        'rate_key="bms-sim:action"' in s and 'outcome="accepted"' in s and me in s for s in calls
    )
    assert not any('outcome="in_flight"' in s for s in calls)
    assert (
        "fleet_limiter_budget_units"
        f'{{period="60",rate_key="bms-sim:action",unit="requests",{me}}} 50.0' in lines
    )
    assert any(
        s.startswith(f'fleet_throttled_total{{rate_key="bms-sim:action",{me}}}') for s in lines
    )
    assert any(
        s.startswith(f'fleet_limiter_waits_total{{rate_key="bms-sim:action",{me}}}') for s in lines
    )
    for family in ("fleet_operations", "fleet_subjobs", "fleet_cloud_calls_total"):
        assert text.count(f"# TYPE {family} ") == 1
    assert "# TYPE fleet_cloud_calls_in_flight gauge" in text


async def test_one_process_labels_its_own_series_and_exports_the_database_once(api: Api) -> None:
    """One process (SQLite) is the leader: every per-replica family carries its worker name, and
    the database-wide families come without one."""
    servers = await api.servers("easystack-sim", status="running")
    made = await api.post(
        "/v1/operations",
        {"action": "stop", "targets": {"endpoints": ["easystack-sim"], "ids": [servers[0]["id"]]}},
    )
    await api.wait(str(made.body["id"]))
    _, text = await scrape(api)
    me = f'worker="{api.fleet.runtime.config.worker}"'
    database = ("fleet_operations{", "fleet_subjobs{")
    assert f"fleet_leader{{{me}}} 1.0" in samples(text)
    assert f"fleet_up{{{me}}} 1.0" in samples(text)
    for line in samples(text):
        assert line.startswith(database) != (me in line), line  # one or the other, never both
    assert 'fleet_operations{state="succeeded"} 1.0' in samples(text)
    assert any(
        s.startswith("fleet_cloud_calls_total{") and 'outcome="accepted"' in s
        for s in samples(text)
    )


async def test_openmetrics_is_served_when_the_scrape_accepts_it(api: Api) -> None:
    # What Prometheus sends: OpenMetrics first, the 0.0.4 text format as a fallback.
    prometheus = (
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"
    )
    content_type, text = await scrape(api, prometheus)
    assert content_type.startswith(OPENMETRICS)
    assert text.endswith("# EOF\n")
    assert "# TYPE fleet_cloud_calls counter" in text
    assert "# TYPE fleet_up gauge" in text
    assert f'fleet_up{{worker="{api.fleet.runtime.config.worker}"}} 1.0' in samples(text)
    for accept in (None, "text/plain", "text/plain;version=0.0.4", "*/*"):
        content_type, text = await scrape(api, accept)
        assert content_type.startswith("text/plain; version=0.0.4"), accept
        assert "# EOF" not in text


async def test_counters_never_go_down_while_calls_are_in_flight(api: Api) -> None:
    # Every action call waits 300 ms in the cloud: scrapes see calls sent and not yet answered.
    async with api.client.session.post(
        f"{api.fleet.simulator_url}/_sim/faults",
        json={"kind": "latency", "match": "*:action", "ms": 300, "count": 0},
    ) as resp:
        assert resp.status == 201
    servers = await api.servers("easystack-sim", status="running")
    ids = [str(s["id"]) for s in servers[:6]]
    made = await api.post(
        "/v1/operations",
        {"action": "stop", "targets": {"endpoints": ["easystack-sim"], "ids": ids}},
    )
    op_id = str(made.body["id"])
    seen: list[dict[str, float]] = []
    in_flight = 0.0
    while (await api.get(f"/v1/operations/{op_id}")).body["finished_at"] is None:
        _, text = await scrape(api)
        seen.append(counters(text))
        in_flight = max(in_flight, *[_value(s) for s in samples(text) if _in_flight(s)], 0.0)
        await asyncio.sleep(0.05)
    _, text = await scrape(api)
    seen.append(counters(text))
    for before, after in itertools.pairwise(seen):
        for series, value in before.items():
            assert series in after, f"{series} disappeared"
            assert after[series] >= value, f"{series} went down: {value} -> {after[series]}"
    assert in_flight > 0  # calls were seen in flight: as a gauge


def _in_flight(sample: str) -> bool:
    return sample.startswith("fleet_cloud_calls_in_flight{")


def _value(sample: str) -> float:
    return float(sample.rsplit(" ", 1)[1])


@pytest.mark.postgres
async def test_without_policies_one_process_of_two_holds_the_database_families(
    tmp_path: Path, pg_url: str
) -> None:
    """Policies disabled on PostgreSQL: the first process to be scraped takes the totals' lock and
    exports the database-wide families; the other leaves them out until the first is gone."""
    off = {"FLEET_POLICIES__ENABLED": "false"}

    def settings(name: str) -> Settings:
        (tmp_path / name).mkdir()
        return api_settings(tmp_path / name, pg_url, FLEET_ENGINE__WORKER=name, **off)

    async def families(fleet: Fleet) -> set[str]:
        return {m.name for m in await metrics.snapshot(fleet)}

    async with open_fleet(settings("one")) as one:
        async with open_fleet(settings("two")) as two:
            assert one.policies is None and two.policies is None
            assert "fleet_subjobs" in await families(one)
            assert "fleet_subjobs" not in await families(two)
            assert "fleet_subjobs" in await families(one)  # it keeps the lock
        async with open_fleet(settings("three")) as three:
            assert "fleet_subjobs" not in await families(three)
    async with open_fleet(settings("four")) as four:  # the holder is gone: the next one leads
        assert "fleet_subjobs" in await families(four)
