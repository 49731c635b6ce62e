"""restart: how soon a `fleet serve` restarted after `kill -9` moves the killed process's rows.

`fleet simulate` (its own process) holds every action call for `--hold-ms` (2 s), so a stop of its
ECS servers always has sub-jobs DISPATCHING. `fleet serve` runs it without `--worker` (its name is
the host name and its API port, the same on every start). Each round waits for DISPATCHING rows,
kills the service with SIGKILL, starts it again at once with the same configuration, and times,
from the kill, until every row that was DISPATCHING has left the call it was in (recovered with
verify_first and claimed again, or ended). Bar: < 5 s in every round, on SQLite and on PostgreSQL,
whatever the lease (30 s by default). The operation is created in the database, as the API would.
Loopback only; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    sim_endpoints,
    sim_secrets,
    simulator_process,
    start_serve,
    wait_listening,
)

WORLD = """
seed = 3
speed = 10.0
[generate]
ecs = 2000
bms = 0
openstack = 0
"""
BOUND = 60.0  # seconds any one wait may take before the benchmark gives up


def _config(path: Path, db_url: str, sim: Mapping[str, Any], lease: float) -> None:
    head = f"""
[database]
url = "{db_url}"
[engine]
lease_seconds = {lease}
poll_interval = 0.5
idle_interval = 0.1
[logging]
format = "json"
level = "warning"
[policies]
enabled = false
"""
    budgets = 'budgets = { action = [{ limit = 20, period = 1, unit = "servers" }] }'
    path.write_text(head + sim_endpoints(sim, {"ecs": budgets}))


async def _held(ops: Operations, op_id: str) -> dict[int, int | None]:
    page = await ops.subjobs(op_id, limit=5000)
    return {s.id: s.call_id for s in page.items if s.state is State.DISPATCHING}


async def _wait_held(ops: Operations, op_id: str) -> dict[int, int | None]:
    deadline = time.monotonic() + BOUND
    while not (held := await _held(ops, op_id)):
        if time.monotonic() > deadline:
            raise SystemExit("restart: no sub-job became DISPATCHING")
        await asyncio.sleep(0.02)
    return held


async def _moved(ops: Operations, op_id: str, held: dict[int, int | None]) -> None:
    deadline = time.monotonic() + BOUND
    while True:
        page = await ops.subjobs(op_id, limit=5000)
        rows = [s for s in page.items if s.id in held]
        if all(s.state is not State.DISPATCHING or s.call_id != held[s.id] for s in rows):
            return
        if time.monotonic() > deadline:
            raise SystemExit("restart: the killed process's rows did not move")
        await asyncio.sleep(0.02)


@contextmanager
def _cloud(tmp: Path, hold_ms: float) -> Iterator[dict[str, Any]]:
    world = tmp / "world.toml"
    world.write_text(WORLD)
    with simulator_process(world, tmp / "sim.log") as sim_url:
        sim = get_json(f"{sim_url}/_sim/endpoints")
        rule = {"kind": "latency", "match": "*:action", "count": 0, "ms": hold_ms}
        post_json(f"{sim_url}/_sim/faults", rule)
        yield sim


async def _rounds(
    db_url: str, rounds: int, lease: float, hold_ms: float
) -> tuple[list[float], list[float]]:
    """Per round: (seconds from the kill until the rows moved, until the API answered again)."""
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-restart-"))
    with _cloud(tmp, hold_ms) as sim:
        config = tmp / "fleet.toml"
        _config(config, db_url, sim, lease)
        env = {**sim_secrets(sim), "FLEET_SERVICE__PORT": str(free_port())}
        await asyncio.to_thread(upgrade, db_url)
        store = SqlJobStore(db_url)
        log = tmp / "serve.log"
        proc = start_serve(config, env, log)
        seconds: list[float] = []
        ready: list[float] = []
        port = int(env["FLEET_SERVICE__PORT"])
        try:
            wait_listening(proc, port, log)
            ops = Operations(store)
            view, _ = await ops.create(
                NewOperation(kind="stop", params={}, selector={}, created_by="bench")
            )
            while len(seconds) < rounds:
                await _wait_held(ops, view.operation.id)
                kill9(proc)
                killed = time.monotonic()
                held = await _held(ops, view.operation.id)  # what the dead process held
                proc = start_serve(config, env, log)
                if not held:  # its calls all ended between the look and the kill: again
                    await asyncio.to_thread(wait_listening, proc, port, log, BOUND)
                    continue
                await _moved(ops, view.operation.id, held)
                seconds.append(time.monotonic() - killed)
                await asyncio.to_thread(wait_listening, proc, port, log, BOUND)
                ready.append(time.monotonic() - killed)
        finally:
            kill9(proc)
            await store.close()
    return seconds, ready


def restart(rounds: int, lease: float = 30.0, hold_ms: float = 2000.0) -> dict[str, object]:
    """Per database: seconds from `kill -9` to the killed process's rows moving, per round."""
    from bench.engine import postgres

    out: dict[str, object] = {"lease_seconds": lease, "rounds": rounds}
    out["load_average_before"] = round(os.getloadavg()[0], 2)
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-restart-db-"))
    results = {
        "sqlite": asyncio.run(
            _rounds(f"sqlite+aiosqlite:///{tmp / 'fleet.db'}", rounds, lease, hold_ms)
        )
    }
    with postgres() as pg:
        results["postgresql"] = asyncio.run(_rounds(pg, rounds, lease, hold_ms))
    for name, (moved, ready) in results.items():
        out[name] = {"moved": _stats(moved), "api_ready": _stats(ready)}
    out["load_average_after"] = round(os.getloadavg()[0], 2)
    out["bar_met"] = max(max(moved) for moved, _ in results.values()) < 5.0
    return out


def _stats(seconds: list[float]) -> dict[str, float]:
    return {
        "min": round(min(seconds), 2),
        "median": round(statistics.median(seconds), 2),
        "max": round(max(seconds), 2),
    }
