"""A `fleet serve` process has a worker name that survives a restart: after `kill -9`, the next
process with the same name takes the killed one's rows back at once (not after their lease), and
a second live process with a name already held is refused with a clear error.

Real processes: `fleet simulate` plays the cloud and outlives the services, which are killed with
SIGKILL; the database (SQLite file, or PostgreSQL) is read by the test directly.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from jobs.operations import Operations
from jobs.records import NewOperation
from jobs.states import State
from jobs.store import SqlJobStore
from jobs.store.migrate import upgrade
from tests.e2e.procs import (
    free_port,
    get_json,
    kill9,
    post_json,
    simulator_process,
    start_serve,
    wait_listening,
)

LEASE = 30.0
WORLD = """
seed = 5
speed = 10.0
[generate]
ecs = 40
bms = 0
openstack = 0
"""


def _config(path: Path, db_url: str, sim: dict[str, dict[str, str]] | None) -> None:
    text = f"""
[database]
url = "{db_url}"
[engine]
lease_seconds = {LEASE}
poll_interval = 0.5
idle_interval = 0.1
drain_grace = 1.0
[logging]
format = "json"
[policies]
enabled = false
"""
    if sim is not None:
        hw = sim["huawei"]
        text += f"""
[[endpoints]]
name = "ecs"
provider = "huawei-ecs"
ecs_url = "{hw["ecs_url"]}"
iam_url = "{hw["iam_url"]}"
project_id = "{hw["project_id"]}"
region = "{hw["region"]}"
credentials = {{ ak_env = "E2E_AK", sk_env = "E2E_SK" }}
budgets = {{ action = [{{ limit = 5, period = 1, unit = "servers" }}] }}
"""
    path.write_text(text)


async def _dispatching(ops: Operations, op_id: str) -> dict[int, int | None]:
    """The operation's DISPATCHING sub-jobs: id -> the call they are in."""
    page = await ops.subjobs(op_id, limit=1000)
    return {s.id: s.call_id for s in page.items if s.state is State.DISPATCHING}


async def _moved_after(ops: Operations, op_id: str, held: dict[int, int | None]) -> float:
    """Seconds until every row of `held` has left the call it was in when its process died."""
    started = time.monotonic()
    while True:
        page = await ops.subjobs(op_id, limit=1000)
        rows = {s.id: s for s in page.items if s.id in held}
        if all(r.state is not State.DISPATCHING or r.call_id != held[i] for i, r in rows.items()):
            return time.monotonic() - started
        assert time.monotonic() - started < 2 * LEASE, "the killed process's rows never moved"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(240)
async def test_a_restart_after_kill_9_takes_its_rows_back_before_their_lease(
    tmp_path: Path, sqlite_url: str
) -> None:
    world = tmp_path / "world.toml"
    world.write_text(WORLD)
    with simulator_process(world, tmp_path / "sim.log") as sim_url:
        sim = get_json(f"{sim_url}/_sim/endpoints")
        # every action call is held for 3 s: rows stay DISPATCHING while the process is killed
        post_json(
            f"{sim_url}/_sim/faults",
            {"kind": "latency", "match": "*:action", "count": 0, "ms": 3000},
        )
        config = tmp_path / "fleet.toml"
        _config(config, sqlite_url, sim)  # type: ignore[arg-type]
        port = free_port()
        env = {
            "E2E_AK": sim["huawei"]["ak"],  # type: ignore[index]
            "E2E_SK": sim["huawei"]["sk"],  # type: ignore[index]
            "FLEET_SERVICE__PORT": str(port),  # no --worker: the name is the host and this port
        }
        log = tmp_path / "serve.log"
        await asyncio.to_thread(upgrade, sqlite_url)
        store = SqlJobStore(sqlite_url)
        try:
            ops = Operations(store)
            first = start_serve(config, env, log)
            wait_listening(first, port, log)
            view, _ = await ops.create(
                NewOperation(kind="stop", params={}, selector={}, created_by="e2e")
            )
            op_id = view.operation.id
            deadline = time.monotonic() + 60
            while not (held := await _dispatching(ops, op_id)):
                assert time.monotonic() < deadline, "no sub-job was ever DISPATCHING"
                await asyncio.sleep(0.05)
            kill9(first)
            killed_at = time.monotonic()
            again = start_serve(config, env, log)
            try:
                moved = await _moved_after(ops, op_id, held)
                since_kill = time.monotonic() - killed_at
            finally:
                kill9(again)
        finally:
            await store.close()
    assert since_kill < LEASE, f"rows moved {since_kill:.1f}s after the kill (lease {LEASE}s)"
    assert moved <= since_kill


@pytest.mark.timeout(180)
async def test_a_second_live_process_with_the_same_name_is_refused(
    tmp_path: Path, db_url: str
) -> None:
    config = tmp_path / "fleet.toml"
    _config(config, db_url, None)
    await asyncio.to_thread(upgrade, db_url)
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    port_a, port_b = free_port(), free_port()
    a = start_serve(config, {"FLEET_SERVICE__PORT": str(port_a)}, log_a, "--worker", "blue")
    try:
        wait_listening(a, port_a, log_a)
        # the name from the environment (engine.worker) this time, the flag for the first one
        env_b = {"FLEET_SERVICE__PORT": str(port_b), "FLEET_ENGINE__WORKER": "blue"}
        b = start_serve(config, env_b, log_b)
        assert b.wait(timeout=60) == 2
        text = log_b.read_text()
        assert "fleet: worker 'blue' is already running" in text, text
        assert a.poll() is None  # the first one goes on
        # the lock dies with its process: a restart right after kill -9 is never refused
        kill9(a)
        a = start_serve(config, {"FLEET_SERVICE__PORT": str(port_a)}, log_a, "--worker", "blue")
        wait_listening(a, port_a, log_a)
    finally:
        kill9(a)
