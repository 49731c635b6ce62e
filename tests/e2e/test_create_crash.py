"""Crash safety of create: 300 servers across ECS, BMS and EasyStack while `fleet serve` is killed
with SIGKILL at random moments (calls in flight, creates being followed, any time), with lost
answers (the cloud acted, the client saw a 504) on every dialect.

A real `fleet simulate` process plays the cloud and outlives the service; its world and request
log are the witnesses: exactly 300 servers carry the operation's tag, one per planned server, with
the expected names and tags, and no create call was ever sent again for a planned server a
performed call had already made.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fleet.engine.templates import slot_of
from jobs.operations import Operations
from jobs.records import NewOperation
from jobs.states import OperationState, State
from jobs.store import SqlJobStore
from jobs.strategy import BlastRadius
from tests.e2e.procs import (
    free_port,
    get_json,
    kill9,
    post_json,
    sim_endpoints,
    sim_secrets,
    simulator_process,
    start_serve,
)

PER_ENDPOINT = 100
TEMPLATE = "web-{n:03d}"
DONE = {OperationState.SUCCEEDED, OperationState.COMPLETED_WITH_FAILURES, OperationState.STOPPED}
CREATE_PATHS = ("/cloudservers", "/baremetalservers", "/servers")
WORLD = """
seed = 13
speed = 10.0
[generate]
ecs = 5
bms = 5
openstack = 5
"""


def _config(path: Path, db_url: str, sim: dict[str, Any], port: int) -> None:
    slow = "action_seconds = { create = 3 }"
    keys = {
        "ecs": slow,
        "bms": slow,
        "es": f"{slow}\nbudgets = {{ create = [{{ limit = 40, period = 1 }}], "
        "list = [{ limit = 50, period = 1 }] }",
    }
    head = f"""
[database]
url = "{db_url}"
[service]
port = {port}
[engine]
lease_seconds = 4.0
poll_interval = 0.5
idle_interval = 0.1
drain_grace = 1.0
[policies]
enabled = false
[logging]
format = "json"
"""
    path.write_text(head + sim_endpoints(sim, keys))


def _endpoint_params(sim: dict[str, Any], endpoint: str) -> dict[str, object]:
    """A create of `PER_ENDPOINT` servers on `endpoint`, from the simulator's catalogue."""
    need = (
        sim["openstack"]["create"]
        if endpoint == "es"
        else sim["huawei"]["create"]["ecs" if endpoint == "ecs" else "bms"]
    )
    params: dict[str, object] = {
        "count": PER_ENDPOINT,
        "name": TEMPLATE,
        "tags": {"env": "e2e"},
        "flavor": need["flavor"],
        "image": need["image"],
        "network": need["network"],
        "availability_zone": need["availability_zone"],
    }
    if "vpc" in need:
        params["vpc"] = need["vpc"]
    return params


async def _wait_for(ops: Operations, ids: list[str], state: State, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for op_id in ids:
            if (await ops.get(op_id)).counts.get(state, 0) > 0:
                return True
        await asyncio.sleep(0.05)
    return False


async def _campaign(tmp_path: Path, db_url: str) -> None:
    world = tmp_path / "world.toml"
    world.write_text(WORLD)
    with simulator_process(world, tmp_path / "sim.log") as sim_url:
        sim: dict[str, Any] = get_json(f"{sim_url}/_sim/endpoints")
        post_json(
            f"{sim_url}/_sim/faults",
            {"kind": "latency", "match": "*:create", "count": 0, "ms": 150},
        )
        for key in ("huawei-ecs:create", "huawei-bms:create", "openstack:create"):
            post_json(f"{sim_url}/_sim/faults", {"kind": "lost_answer", "match": key, "count": 2})
        config, port = tmp_path / "e2e.toml", free_port()
        _config(config, db_url, sim, port)
        env = sim_secrets(sim)
        store = SqlJobStore(db_url)
        try:
            from jobs.store.migrate import upgrade

            await asyncio.to_thread(upgrade, db_url)
            ops = Operations(store)
            ids = []
            for endpoint in ("ecs", "bms", "es"):
                new = NewOperation(
                    kind="create",
                    params=_endpoint_params(sim, endpoint),
                    selector={"endpoints": [endpoint]},
                    guard=BlastRadius(max_servers=PER_ENDPOINT),
                    created_by="e2e",
                )
                ids.append((await ops.create(new))[0].operation.id)
            rng = random.Random(13)
            log = tmp_path / "serve.log"
            for i, moment in enumerate([State.DISPATCHING, State.AWAITING, None]):
                serve = start_serve(config, env, log)
                if moment is None:
                    await asyncio.sleep(rng.uniform(0.5, 2.0))
                else:
                    assert await _wait_for(ops, ids, moment, 60), f"never saw {moment} (kill {i})"
                    await asyncio.sleep(rng.uniform(0.0, 0.3))
                kill9(serve)
            serve = start_serve(config, env, log)
            try:
                deadline = time.monotonic() + 200
                for op_id in ids:
                    while (state := (await ops.get(op_id)).state) not in DONE:
                        assert time.monotonic() < deadline, f"operation still {state}"
                        await asyncio.sleep(0.25)
            finally:
                kill9(serve)
            rows = [s for op_id in ids for s in (await ops.subjobs(op_id, limit=1000)).items]
        finally:
            await store.close()
        _assert_outcome(
            ids, rows, get_json(f"{sim_url}/_sim/requests"), get_json(f"{sim_url}/_sim/servers")
        )


def _slots_of_call(entry: dict[str, Any], op_ids: list[str]) -> list[tuple[str, int]]:
    """(operation, planned server) pairs a create call asked for, from its body."""
    server = (entry.get("body") or {}).get("server") or {}
    tags = server.get("server_tags") or server.get("tags") or []
    op = next(
        (
            t["value"] if isinstance(t, dict) else t.partition("=")[2]
            for t in tags
            if (t.get("key") if isinstance(t, dict) else t.partition("=")[0]) == "fleet-op"
        ),
        None,
    )
    if op not in op_ids:
        return []
    count, name = int(server.get("count", 1)), str(server["name"])
    if "count" not in server:  # Nova: one server, its planned name
        return [(op, int(name.rsplit("-", 1)[1]))]
    first = slot_of(name, TEMPLATE, op)
    assert first is not None, name
    return [(op, first + i) for i in range(count)]


def _assert_outcome(
    op_ids: list[str], rows: list[Any], log: dict[str, Any], world: dict[str, Any]
) -> None:
    assert len(rows) == 3 * PER_ENDPOINT
    assert Counter(s.state for s in rows) == {State.SUCCEEDED: 3 * PER_ENDPOINT}, Counter(
        (s.state, s.error_code, s.error_message) for s in rows
    )
    made = [s for s in world["servers"] if s["tags"].get("fleet-op") in op_ids]
    assert len(made) == 3 * PER_ENDPOINT
    assert all(s["tags"].get("env") == "e2e" and s["status"] == "ACTIVE" for s in made)
    slots = Counter(
        (
            s["tags"]["fleet-op"],
            slot_of(s["name"], TEMPLATE, s["tags"]["fleet-op"]) or int(s["name"][4:]),
        )
        for s in made
    )
    assert set(slots.values()) == {1}
    assert {n for _, n in slots} == set(range(1, PER_ENDPOINT + 1))
    performed: Counter[tuple[str, int]] = Counter()
    for entry in log["requests"]:
        path = str(entry["path"])
        if entry["method"] != "POST" or not path.endswith(CREATE_PATHS):
            continue
        if entry["status"] is not None and (entry["status"] < 300 or entry["status"] == 504):
            performed.update(_slots_of_call(entry, op_ids))
    twice = {k: n for k, n in performed.items() if n > 1}
    assert twice == {}, f"{len(twice)} planned servers were created by more than one call"
    assert len(performed) == 3 * PER_ENDPOINT


@pytest.mark.timeout(400)
async def test_create_300_kill_9_sqlite(tmp_path: Path, sqlite_url: str) -> None:
    await _campaign(tmp_path, sqlite_url)


@pytest.mark.postgres
@pytest.mark.timeout(400)
async def test_create_300_kill_9_postgresql(tmp_path: Path, pg_url: str) -> None:
    await _campaign(tmp_path, pg_url)
