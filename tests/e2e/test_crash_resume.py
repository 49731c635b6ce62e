"""Crash safety: kill -9 the worker three times mid-campaign; nothing lost, nothing sent twice,
and every succeeded sub-job has the cloud's evidence of its action (a performed call in the
simulator's log), also when another operation edits the same servers' tags meanwhile (a change
to a server is no evidence that it rebooted).

A real `fleet simulate` process plays the cloud and outlives the workers; its request log is the
witness. The operation is created in the database by this test (as the API would), then `fleet
worker` processes run it and are killed with SIGKILL at random moments: while calls are being sent
(sub-jobs DISPATCHING), while cloud jobs are polled (AWAITING), and at a random time in between.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from jobs.operations import Operations
from jobs.records import NewOperation
from jobs.states import OperationState, State
from jobs.store import SqlJobStore
from tests.e2e.procs import (
    get_json,
    kill9,
    post_json,
    sim_endpoints,
    sim_secrets,
    simulator_process,
    start_worker,
)

TERMINAL = {State.SUCCEEDED, State.FAILED, State.CANCELLED, State.SKIPPED}
DONE = {OperationState.SUCCEEDED, OperationState.COMPLETED_WITH_FAILURES, OperationState.STOPPED}
ACTIONS = {"stop": "os-stop", "reboot": "reboot"}

WORLD = """
seed = 11
speed = 10.0
[generate]
ecs = 300
bms = 0
openstack = 200
"""


def _config(path: Path, db_url: str, sim: Mapping[str, Any]) -> None:
    keys = {
        "ecs": 'budgets = { action = [{ limit = 100, period = 1, unit = "servers" }] }',
        "es": "budgets = { action = [{ limit = 40, period = 1 }], "
        "show = [{ limit = 400, period = 1 }], list = [{ limit = 50, period = 1 }] }",
    }
    head = f"""
[database]
url = "{db_url}"
[engine]
lease_seconds = 4.0
poll_interval = 0.5
idle_interval = 0.1
drain_grace = 1.0
[logging]
format = "json"
"""
    path.write_text(head + sim_endpoints(sim, keys))


async def _counts(ops: Operations, op_id: str) -> dict[State, int]:
    return dict((await ops.get(op_id)).counts)


async def _wait_for(ops: Operations, op_id: str, state: State, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (await _counts(ops, op_id)).get(state, 0) > 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def _run_campaign(tmp_path: Path, db_url: str, kind: str, *, tags: bool = False) -> None:
    world = tmp_path / "world.toml"
    world.write_text(WORLD)
    with simulator_process(world, tmp_path / "sim.log") as sim_url:
        sim = get_json(f"{sim_url}/_sim/endpoints")
        # Calls take a while, so that kills land while calls are in flight.
        post_json(
            f"{sim_url}/_sim/faults",
            {"kind": "latency", "match": "*:action", "count": 0, "ms": 150},
        )
        config = tmp_path / "e2e.toml"
        _config(config, db_url, sim)
        env = sim_secrets(sim)
        store = SqlJobStore(db_url)
        try:
            from jobs.store.migrate import upgrade

            await asyncio.to_thread(upgrade, db_url)
            ops = Operations(store)
            view, _ = await ops.create(
                NewOperation(kind=kind, params={}, selector={}, created_by="e2e")
            )
            op_id = view.operation.id
            tag_op = None
            if tags:  # a concurrent operation on the same servers: tags, where a dialect has them
                tagging = NewOperation(
                    kind="tag_add",
                    params={"tags": {"patched": "yes"}},
                    selector={},
                    created_by="e2e",
                )
                tag_op = (await ops.create(tagging))[0].operation.id
            rng = random.Random(kind)
            log = tmp_path / "worker.log"
            moments = [State.DISPATCHING, State.AWAITING, None]
            for i, moment in enumerate(moments):
                worker = start_worker(config, "w1", env, log)
                if moment is None:
                    await asyncio.sleep(rng.uniform(0.5, 2.0))
                else:
                    assert await _wait_for(ops, op_id, moment, 60), f"never saw {moment} (kill {i})"
                    await asyncio.sleep(rng.uniform(0.0, 0.2))
                kill9(worker)
            worker = start_worker(config, "w2", env, log)  # another name: the reaper's path too
            try:
                deadline = time.monotonic() + 240
                for waited in (op_id, tag_op):
                    while waited and (state := (await ops.get(waited)).state) not in DONE:
                        assert time.monotonic() < deadline, f"operation still {state}"
                        await asyncio.sleep(0.25)
            finally:
                kill9(worker)
            subjobs = (await ops.subjobs(op_id, limit=1000)).items
            if tag_op is not None:
                tagged = (await ops.subjobs(tag_op, limit=1000)).items
                assert {s.state for s in tagged} <= {State.SUCCEEDED, State.SKIPPED}, Counter(
                    (s.state, s.error_code) for s in tagged
                )
                assert any(s.state is State.SUCCEEDED for s in tagged)
        finally:
            await store.close()
        _assert_outcome(
            kind, subjobs, get_json(f"{sim_url}/_sim/requests"), get_json(f"{sim_url}/_sim/servers")
        )


def _assert_outcome(
    kind: str, subjobs: object, log: dict[str, object], world: dict[str, object]
) -> None:
    rows = list(subjobs)  # type: ignore[call-overload]
    assert len(rows) == 500
    assert all(s.state in TERMINAL for s in rows), Counter(s.state for s in rows)
    acted = [s for s in rows if s.state is State.SUCCEEDED]
    assert len(acted) > 300, Counter((s.state, s.reason) for s in rows)
    failed = [s for s in rows if s.state is State.FAILED]
    assert failed == [], [(s.target_id, s.error_code, s.error_message) for s in failed]
    sent: Counter[str] = Counter()
    for entry in log["requests"]:  # type: ignore[union-attr]
        body = entry.get("body") or {}
        if entry["status"] is not None and entry["status"] < 300 and ACTIONS[kind] in body:
            sent.update(entry["server_ids"])
    twice = {sid: n for sid, n in sent.items() if n > 1}
    assert twice == {}, f"{len(twice)} servers got {kind} more than once"
    assert {str(s.payload["server_id"]) for s in acted} <= set(sent)
    if kind == "stop":
        status = {s["id"]: s["status"] for s in world["servers"]}  # type: ignore[union-attr]
        assert all(status[str(s.payload["server_id"])] == "SHUTOFF" for s in acted)


@pytest.mark.timeout(400)
async def test_kill_9_three_times_sqlite_stop(tmp_path: Path, sqlite_url: str) -> None:
    await _run_campaign(tmp_path, sqlite_url, "stop")


@pytest.mark.timeout(400)
async def test_kill_9_three_times_sqlite_reboot_with_tag_edits(
    tmp_path: Path, sqlite_url: str
) -> None:
    await _run_campaign(tmp_path, sqlite_url, "reboot", tags=True)


@pytest.mark.postgres
@pytest.mark.timeout(400)
async def test_kill_9_three_times_postgresql_reboot(tmp_path: Path, pg_url: str) -> None:
    await _run_campaign(tmp_path, pg_url, "reboot", tags=True)
