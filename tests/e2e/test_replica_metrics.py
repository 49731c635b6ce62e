"""`/metrics` of two `fleet serve` replicas on one PostgreSQL database: a sum over the replicas
counts everything once.

Each replica labels what it does itself (its cloud calls, its limiter) with its worker name; the
database-wide families (operations, sub-jobs by state) come from the leader only, the replica
`/readyz` calls `leader: yes`. When the leader is killed, the survivor takes the scheduler and
the database-wide families with it. The simulator is the witness of the calls.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import get_json, kill9, simulator_process
from tests.e2e.replica_runs import BUDGETS, LIMITS
from tests.e2e.replicas import Cluster, Replica, cluster, wait_done, world_text

# a policy that never fires while the test runs: the scheduler (and its leader) run all the same
YEARLY = """
[[policies]]
name = "new-year"
cron = "0 0 0 1 1 *"
timezone = "UTC"
action = "stop"
params = { type = "SOFT" }
targets = { endpoints = ["ecs"] }
dry_run_only = true
"""
DATABASE = ("fleet_operations{", "fleet_subjobs{")
SAMPLE = re.compile(r"^(\w+)(\{.*\})? (\S+)$")


def scrape(group: Cluster, replica: Replica) -> dict[str, float]:
    request = urllib.request.Request(
        replica.url + "/metrics", headers={"Authorization": f"Bearer {group.token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # loopback only
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            match = SAMPLE.match(line)
            assert match, line
            out[match[1] + (match[2] or "")] = float(match[3])
    return out


def until(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.25)


def accepted_stops(sim_url: str) -> int:
    requests: list[dict[str, Any]] = get_json(f"{sim_url}/_sim/requests", timeout=60)["requests"]  # type: ignore[assignment]
    return sum(
        1
        for entry in requests
        if entry["status"] is not None
        and entry["status"] < 300
        and isinstance(entry.get("body"), dict)
        and "os-stop" in entry["body"]
    )


def own(metrics: dict[str, float], name: str) -> bool:
    """Every sample but the database-wide ones carries this replica's worker name, and those
    never do."""
    return all((f'worker="{name}"' in s) != s.startswith(DATABASE) for s in metrics)


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_each_replica_labels_its_own_series_and_the_leader_alone_exports_the_database(
    tmp_path: Path, pg_url: str
) -> None:
    world = tmp_path / "world.toml"
    world.write_text(world_text(ecs=40, bms=0, openstack=0, limits=LIMITS))
    with (
        simulator_process(world, tmp_path / "sim.log") as sim_url,
        cluster(tmp_path, pg_url, sim_url, BUDGETS, 2, policies=YEARLY) as group,
    ):
        until(lambda: group.leader() is not None, 30)
        body = {"action": "stop", "targets": {"endpoints": ["ecs"]}}
        op_id = group.api(group.replicas[0], "POST", "/v1/operations", body)["id"]
        wait_done(group, [op_id], 120)
        leader = group.leader()
        assert leader is not None
        seen = {r.name: scrape(group, r) for r in group.replicas}
        for name, metrics in seen.items():
            assert own(metrics, name), metrics
            assert metrics[f'fleet_leader{{worker="{name}"}}'] == (name == leader.name)
            assert any(s.startswith(DATABASE) for s in metrics) == (name == leader.name)
        assert seen[leader.name]['fleet_operations{state="succeeded"}'] == 1
        # each stop call the cloud accepted is counted once, by the replica that sent it
        sent = [
            value
            for metrics in seen.values()
            for series, value in metrics.items()
            if series.startswith("fleet_cloud_calls_total{")
            and 'purpose="submit"' in series
            and 'outcome="accepted"' in series
        ]
        assert sum(sent) == accepted_stops(sim_url) > 0
        # the leader dies: the survivor takes the scheduler and the database-wide families
        kill9(leader.proc)
        [survivor] = group.alive()
        until(lambda: group.ready(survivor).get("leader") == "yes", 30)
        after = scrape(group, survivor)
        assert after[f'fleet_leader{{worker="{survivor.name}"}}'] == 1
        assert after['fleet_operations{state="succeeded"}'] == 1
        assert own(after, survivor.name)
        for series, value in seen[survivor.name].items():  # its counters never went down
            if "_total{" in series:
                assert after[series] >= value, series
