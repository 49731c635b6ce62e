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
- an event stream read from a replica that did not dispatch the operation saw it to its end.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.e2e.replica_runs import LEASE, LIMITS, kill_run


@pytest.mark.postgres
@pytest.mark.timeout(420)
async def test_three_replicas_hold_budgets_and_survive_two_kills(
    tmp_path: Path, pg_url: str
) -> None:
    run = await kill_run(tmp_path, pg_url)
    assert run.throttled == 0
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
