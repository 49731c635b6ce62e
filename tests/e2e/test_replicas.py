"""Three `fleet serve` replicas on one PostgreSQL database run as one fleet.

Operations on the three dialects (created through three different replicas) saturate their
action budgets, kept short (2 s windows) in the simulator and in fleet alike, for several windows;
a policy fires every 5 s (dry runs). The policy leader is killed with SIGKILL once it holds
sub-jobs in flight, then another replica; the last one finishes everything
(`tests/e2e/replica_runs.py`). The simulator, its own process, is the witness:

- no throttled answer, and no key ever had more than its limit in any window (`/_sim/stats`);
- no server got the same action twice (`/_sim/requests`);
- every operation succeeded, and every server it had to stop is stopped;
- a killed replica's sub-jobs left its hands, and a new leader took the scheduler, before the
  30 s lease would have let them (the 10 s figure is `bench/replicas.py`'s);
- every policy slot from the first to the last fired once, none missing;
- an event stream read on a replica the operation was not created on saw it to its end, while
  the replica it was created on was killed and the others dispatched it.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
from pathlib import Path

import pytest

from tests.e2e.procs import get_json, simulator_process
from tests.e2e.replica_runs import BUDGETS, LEASE, LIMITS, kill_run
from tests.e2e.replicas import cluster, duplicates, over_limit, wait_done, world_text


@pytest.mark.postgres
@pytest.mark.timeout(420)
async def test_three_replicas_hold_budgets_and_survive_two_kills(
    tmp_path: Path, pg_url: str
) -> None:
    run = await kill_run(tmp_path, pg_url)
    assert run.throttled == 0, run
    assert run.max_over_limit <= 0, run.peaks
    assert set(run.peaks) >= set(LIMITS), run.peaks  # every limited key was used
    assert run.duplicates == 0
    assert run.states == {"succeeded"}
    assert run.left_running == {}
    assert all(t < LEASE for t in run.takeovers), run.takeovers
    assert run.stream_error is None and run.events.get("end") == 1, run.events
    # a dry run per slot while there is something to stop, then "skipped: nothing to do"
    assert len(run.slots) >= 4
    steps = {round(b[0] - a[0], 3) for a, b in itertools.pairwise(run.slots)}
    assert steps == {5.0}, run.slots
    statuses = [status for _, status in run.slots]
    assert set(statuses) <= {"fired", "skipped"} and "fired" in statuses, statuses
    assert run.policy_operations == statuses.count("fired")


@pytest.mark.postgres
@pytest.mark.timeout(300)
async def test_a_rolling_restart_with_sigterm_loses_nothing(tmp_path: Path, pg_url: str) -> None:
    """docs/deploy.md's upgrade: `fleet db upgrade` while replicas run, then each replica in turn
    stopped with SIGTERM (it drains and exits 0) and started again under its name."""
    world = tmp_path / "world.toml"
    world.write_text(world_text(ecs=60, bms=0, openstack=0, limits=LIMITS))
    with (
        simulator_process(world, tmp_path / "sim.log") as sim_url,
        cluster(tmp_path, pg_url, sim_url, BUDGETS, 2) as group,
    ):
        running = {
            str(s["id"])
            for s in get_json(f"{sim_url}/_sim/servers")["servers"]  # type: ignore[union-attr]
            if s["status"] == "ACTIVE" and s["tags"].get("fleet-exclude") != "true"
        }
        body = {"action": "stop", "targets": {"endpoints": ["ecs"]}}
        op_id = group.api(group.replicas[0], "POST", "/v1/operations", body)["id"]
        group.upgrade()  # migrations once, while the replicas run (at head: nothing to do)
        for replica in list(group.replicas):
            await asyncio.sleep(2.0)
            replica.proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(replica.proc.wait, 30) == 0, replica.log.read_text()
            group.replicas.remove(replica)
            group.start(replica.name)
            await asyncio.to_thread(group.wait_ready)
        views = await asyncio.to_thread(wait_done, group, [op_id], 240)
        stats = get_json(f"{sim_url}/_sim/stats")
        requests = get_json(f"{sim_url}/_sim/requests", timeout=60)
        status = {
            str(s["id"]): s["status"]
            for s in get_json(f"{sim_url}/_sim/servers")["servers"]  # type: ignore[union-attr]
        }
    assert views[op_id]["state"] == "succeeded"
    assert all(status[i] == "SHUTOFF" for i in running)
    throttled, worst, peaks = over_limit(stats)
    assert throttled == 0 and worst <= 0, peaks
    assert duplicates(requests) == 0
