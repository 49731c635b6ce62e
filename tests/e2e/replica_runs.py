"""The runs of `tests/e2e/test_replicas.py` and `bench/replicas.py`: three replicas on one
PostgreSQL database with two of them killed (SIGKILL) mid-campaign, and an unlimited stop timed
on one replica and on three.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.procs import (
    cpu_seconds,
    get_json,
    kill9,
    post_json,
    postgres_cpu_seconds,
    simulator_process,
)
from tests.e2e.replicas import (
    Cluster,
    EventReader,
    Replica,
    cluster,
    duplicates,
    held_by,
    over_limit,
    slot_fires,
    wait_done,
    world_text,
)

LIMITS = {
    "huawei-ecs:action": (10, 2.0, "servers"),
    "huawei-bms:action": (2, 2.0, "requests"),
    "openstack:action": (4, 2.0, "requests"),
}
BUDGETS = {
    "ecs": '{ action = [{ limit = 10, period = 2, unit = "servers" }] }',
    "bms": "{ action = [{ limit = 2, period = 2 }] }",
    "es": "{ action = [{ limit = 4, period = 2 }] }",
}
POLICIES = """
[[policies]]
name = "every-5s"
cron = "*/5 * * * * *"
timezone = "UTC"
action = "stop"
params = { type = "SOFT" }
targets = { endpoints = ["ecs"] }
dry_run_only = true
"""
LEASE = 30.0  # the default lease: a takeover must come well before it
SIZES = {"ecs": 80, "bms": 24, "openstack": 40}


@dataclass
class KillRun:
    """What the killed-replicas run saw (the simulator is the witness of the first four)."""

    throttled: int
    throttled_keys: dict[str, int]  # the keys that answered 429, and how often
    max_over_limit: int  # most units over a key's limit in any window (<= 0: held)
    peaks: dict[str, int]  # max units in a window per limited key
    duplicates: int
    takeovers: list[float]  # seconds from each kill until its work and leadership moved
    states: set[str]  # the operations' final states
    left_running: dict[str, str]  # servers the operations should have stopped, not stopped
    events: dict[str, int]  # the event stream, read on a replica the operation was not created on
    stream_error: str | None
    slots: list[tuple[float, str]]  # policy fires: (slot in epoch s, status), in slot order
    policy_operations: int
    seconds: float  # from the first operation to the last one's end


async def _takeover(group: Cluster, db_url: str, victim: Replica, leader: bool) -> float:
    """Seconds from the kill until the victim holds no sub-job and, if it led, another leads."""
    killed = time.monotonic()
    while True:
        held = await held_by(db_url, victim.name)
        led = not leader or group.leader() is not None
        if held == 0 and led:
            return time.monotonic() - killed
        if time.monotonic() - killed > 2 * LEASE:
            raise AssertionError(f"{victim.name}: {held} sub-jobs still held, leader {led}")
        await asyncio.sleep(0.1)


async def _kill_holding(db_url: str, victim: Replica) -> None:
    """Kill once the victim has sub-jobs in flight (bounded wait), so it leaves work behind."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if await held_by(db_url, victim.name):
            break
        await asyncio.sleep(0.05)
    kill9(victim.proc)


async def _leader(group: Cluster) -> Replica:
    for _ in range(200):
        if (leader := group.leader()) is not None:
            return leader
        await asyncio.sleep(0.1)
    raise AssertionError("no replica leads the policy scheduler")


def _to_stop(servers: list[dict[str, Any]]) -> set[str]:
    """What a stop of everything must stop: running servers without fleet-exclude=true."""
    return {
        str(s["id"])
        for s in servers
        if s["status"] == "ACTIVE" and s["tags"].get("fleet-exclude") != "true"
    }


async def kill_run(tmp: Path, db_url: str) -> KillRun:
    """Stops on the three dialects through three replicas; the leader killed, then another."""
    world = tmp / "world.toml"
    world.write_text(world_text(limits=LIMITS, **SIZES))
    with (
        simulator_process(world, tmp / "sim.log") as sim_url,
        cluster(tmp, db_url, sim_url, BUDGETS, 3, POLICIES) as group,
    ):
        leader = await _leader(group)
        watcher, second = [r for r in group.replicas if r is not leader]
        running = _to_stop(get_json(f"{sim_url}/_sim/servers")["servers"])  # type: ignore[arg-type]
        bodies = [  # each operation through another replica
            (leader, {"action": "stop", "targets": {"endpoints": ["ecs"]}}),
            (
                second,
                {
                    "action": "stop",
                    "targets": {"endpoints": ["bms"]},
                    "strategy": {"max_in_flight": 3},
                },
            ),
            (watcher, {"action": "stop", "targets": {"endpoints": ["es"]}}),
        ]
        started = time.monotonic()
        op_ids = [group.api(r, "POST", "/v1/operations", body)["id"] for r, body in bodies]
        reader = EventReader(group, watcher, op_ids[0], seconds=300)  # created on the leader
        reader.start()
        await asyncio.sleep(3.0)
        await _kill_holding(db_url, leader)
        takeovers = [await _takeover(group, db_url, leader, leader=True)]
        await _kill_holding(db_url, second)
        takeovers.append(await _takeover(group, db_url, second, leader=False))
        views = await asyncio.to_thread(wait_done, group, op_ids, 300)
        seconds = time.monotonic() - started
        await asyncio.sleep(6.0)  # one more policy slot, on the last replica
        reader.join(timeout=30)
        stats = get_json(f"{sim_url}/_sim/stats")
        requests = get_json(f"{sim_url}/_sim/requests", timeout=60)
        status = {
            str(s["id"]): str(s["status"])
            for s in get_json(f"{sim_url}/_sim/servers")["servers"]  # type: ignore[union-attr]
        }
        slots, policy_ops = await slot_fires(db_url)
    throttled, worst, peaks = over_limit(stats)
    return KillRun(
        throttled=throttled,
        throttled_keys={k: int(s["throttled"]) for k, s in stats["keys"].items() if s["throttled"]},
        max_over_limit=worst,
        peaks=peaks,
        duplicates=duplicates(requests),
        takeovers=takeovers,
        states={str(v["state"]) for v in views.values()},
        left_running={i: status[i] for i in running if status[i] != "SHUTOFF"},
        events=dict(reader.events),
        stream_error=reader.error,
        slots=slots,
        policy_operations=policy_ops,
        seconds=seconds,
    )


IDLE_SAMPLE = 3.0  # seconds the idle cost is sampled for, before the operation


@dataclass(frozen=True)
class UnlimitedRun:
    seconds: float  # the operation's stop of every server
    cpu_s: float  # CPU seconds of the replicas and the database server meanwhile
    idle_cpu_per_s: float  # their CPU seconds per second before the operation, doing nothing


async def unlimited_run(tmp: Path, db_url: str, replicas: int, servers: int) -> UnlimitedRun:
    """`replicas` replicas stop `servers` ECS servers with no budget at all: how long, and the
    CPU the replicas and the database server spent on it and before it, idle."""
    world = tmp / "world.toml"
    # a stop settles in 20 simulated seconds, 0.02 s here, and fleet is told so: the run times
    # the replicas, not the simulated cloud (at speed 10 and fleet's own 20 s, a stop of any
    # size took 22 s on one replica or three)
    world.write_text(world_text(ecs=servers, bms=0, openstack=0, limits={}, speed=1000.0))
    budgets = {"ecs": "{ action = [] }"}
    extra = {"ecs": "action_seconds = { stop = 0.02 }"}
    port = int(db_url.rsplit(":", 1)[1].split("/", 1)[0])
    with (
        simulator_process(world, tmp / "sim.log") as sim_url,
        # the product's idle interval (0.5 s), as users run it: the tests' 0.1 s is for quick
        # takeovers, and each idle replica's loops cost a core-share for it (benchmarks.md)
        cluster(tmp, db_url, sim_url, budgets, replicas, extra=extra, idle_interval=None) as group,
    ):
        # the simulator's own ECS action limit (1,000 servers a minute) is lifted too: 3,000
        # servers waited for three of its windows on one replica or three
        post_json(f"{sim_url}/_sim/limits", {"huawei-ecs:action": None})
        await asyncio.sleep(1.0)  # start-up settles before the clock starts
        first = group.replicas[0]
        pids = [r.proc.pid for r in group.replicas]
        idle_from = cpu_seconds(pids) + postgres_cpu_seconds(port)
        await asyncio.sleep(IDLE_SAMPLE)  # what the replicas and the database cost doing nothing
        cpu_before = cpu_seconds(pids) + postgres_cpu_seconds(port)
        idle = (cpu_before - idle_from) / IDLE_SAMPLE
        started = time.monotonic()
        body = {"action": "stop", "targets": {"endpoints": ["ecs"]}}
        op_id = group.api(first, "POST", "/v1/operations", body)["id"]
        views = await asyncio.to_thread(wait_done, group, [op_id], 600)
        if views[op_id]["state"] != "succeeded":
            raise AssertionError(views)
        seconds = time.monotonic() - started
        cpu = cpu_seconds(pids) + postgres_cpu_seconds(port) - cpu_before
        return UnlimitedRun(seconds, cpu, idle)
