"""Several `fleet serve` replicas on one PostgreSQL database, `fleet simulate` as the cloud: the
harness of `tests/e2e/test_replicas.py` and `bench/replicas.py`.

Each replica is started as users run them (`docs/deploy.md`): one configuration file, the schema
migrated once (`fleet db upgrade`), one admin token (`fleet tokens create`), then `fleet serve
--worker NAME` per replica, each on its own port. Everything is loopback; every wait is bounded.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.e2e.procs import (
    fleet_run,
    free_port,
    get_json,
    kill9,
    migrated_token,
    sim_endpoints,
    sim_secrets,
    start_serve,
    wait_listening,
)

DONE = {"succeeded", "completed_with_failures", "stopped", "failed", "cancelled"}
ACTION_BODIES = ("os-stop", "os-start", "reboot")


def world_text(
    ecs: int,
    bms: int,
    openstack: int,
    limits: Mapping[str, tuple[int, float, str]],
    speed: float = 10.0,
) -> str:
    text = f"seed = 17\nspeed = {speed}\n[generate]\necs = {ecs}\nbms = {bms}\nopenstack = {openstack}\n"
    for key, (limit, period, unit) in limits.items():
        text += f'[limits."{key}"]\nlimit = {limit}\nperiod = {period}\nunit = "{unit}"\n'
    return text


def config_text(
    db_url: str,
    sim: Mapping[str, Any],
    budgets: Mapping[str, str],
    policies: Path | None,
    extra: Mapping[str, str] | None = None,
    idle_interval: float | None = 0.1,
) -> str:
    """The replicas' one configuration; `budgets` maps an endpoint name to its TOML budgets,
    `extra` to more TOML lines of its table (`action_seconds = {...}`, say). The loops wake
    every `idle_interval` seconds when idle (0.1: the tests' takeovers and policy slots come
    soon); None leaves it out, so the replicas run the product's default."""
    idle = "" if idle_interval is None else f"idle_interval = {idle_interval}\n"
    text = f"""
[database]
url = "{db_url}"
[engine]
poll_interval = 0.5
{idle}drain_grace = 2.0
[logging]
format = "json"
level = "warning"
[policies]
enabled = {"true" if policies else "false"}
files = ["{policies or ""}"]
sweep_interval = 5
"""
    more = extra or {}
    keys = {
        name: f"budgets = {budgets.get(name, '{}')}\n{more.get(name, '')}"
        for name in ("ecs", "bms", "es")
    }
    return text + sim_endpoints(sim, keys)


@dataclass
class Replica:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Cluster:
    """Replicas of one configuration; `api` and `ready` speak to one of them by index."""

    config: Path
    env: dict[str, str]
    token: str
    tmp: Path
    replicas: list[Replica] = field(default_factory=list)

    def upgrade(self) -> None:
        """`fleet db upgrade` with the replicas' configuration."""
        fleet_run(["db", "upgrade", "--config", str(self.config)], self.env)

    def start(self, name: str) -> Replica:
        port = free_port()
        log = self.tmp / f"{name}.log"
        env = {**self.env, "FLEET_SERVICE__PORT": str(port)}
        proc = start_serve(self.config, env, log, "--worker", name)
        replica = Replica(name, port, proc, log)
        self.replicas.append(replica)
        return replica

    def wait_ready(self, seconds: float = 120) -> None:
        for replica in self.replicas:
            if replica.alive:
                wait_listening(replica.proc, replica.port, replica.log, seconds)

    def api(self, replica: Replica, method: str, path: str, body: object = None) -> Any:
        request = urllib.request.Request(
            replica.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:  # loopback only
            return json.loads(resp.read())

    def ready(self, replica: Replica) -> dict[str, str]:
        request = urllib.request.Request(
            replica.url + "/readyz", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # loopback only
                return dict(json.loads(resp.read())["checks"])
        except urllib.error.HTTPError as exc:
            return dict(json.loads(exc.read())["checks"])

    def leader(self) -> Replica | None:
        for replica in self.replicas:
            if replica.alive and self.ready(replica).get("leader") == "yes":
                return replica
        return None

    def alive(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive]

    def stop(self) -> None:
        for replica in self.replicas:
            if replica.alive:
                kill9(replica.proc)


@contextmanager
def cluster(
    tmp: Path,
    db_url: str,
    sim_url: str,
    budgets: Mapping[str, str],
    replicas: int,
    policies: str | None = None,
    extra: Mapping[str, str] | None = None,
    idle_interval: float | None = 0.1,
) -> Iterator[Cluster]:
    """`replicas` replicas named r1, r2, ... started and ready; killed (SIGKILL) on exit."""
    sim = get_json(f"{sim_url}/_sim/endpoints")
    policy_file = None
    if policies is not None:
        policy_file = tmp / "policies.toml"
        policy_file.write_text(policies)
    config = tmp / "fleet.toml"
    config.write_text(config_text(db_url, sim, budgets, policy_file, extra, idle_interval))
    env = sim_secrets(sim)
    group = Cluster(config, env, migrated_token(config, env, "bench", "admin"), tmp)
    try:
        for i in range(replicas):
            group.start(f"r{i + 1}")
        group.wait_ready()
        yield group
    finally:
        group.stop()


def wait_done(group: Cluster, op_ids: list[str], seconds: float) -> dict[str, dict[str, Any]]:
    """Every operation's view once it has ended, read from any replica still alive."""
    deadline = time.monotonic() + seconds
    views: dict[str, dict[str, Any]] = {}
    while len(views) < len(op_ids):
        if time.monotonic() > deadline:
            raise AssertionError(f"operations not finished: {set(op_ids) - set(views)}")
        replica = group.alive()[0]
        for op_id in op_ids:
            if op_id not in views:
                view = group.api(replica, "GET", f"/v1/operations/{op_id}")
                if view["state"] in DONE:
                    views[op_id] = view
        time.sleep(0.25)
    return views


class EventReader(threading.Thread):
    """Reads an operation's SSE stream from one replica until `end` (or the time is up)."""

    def __init__(self, group: Cluster, replica: Replica, op_id: str, seconds: float) -> None:
        super().__init__(daemon=True)
        self.request = urllib.request.Request(
            f"{replica.url}/v1/operations/{op_id}/events",
            headers={"Authorization": f"Bearer {group.token}", "Accept": "text/event-stream"},
        )
        self.seconds = seconds
        self.events: Counter[str] = Counter()
        self.error: str | None = None

    def run(self) -> None:
        try:
            with urllib.request.urlopen(self.request, timeout=self.seconds) as resp:
                for raw in resp:
                    line = raw.decode().strip()
                    if line.startswith("event:"):
                        kind = line.split(":", 1)[1].strip()
                        self.events[kind] += 1
                        if kind == "end":
                            return
        except Exception as exc:  # reported by the test
            self.error = repr(exc)


def duplicates(requests: Mapping[str, Any]) -> int:
    """Servers that got an accepted action call of one kind more than once (simulator's log)."""
    sent: Counter[tuple[str, str]] = Counter()
    for entry in requests["requests"]:
        body = entry.get("body") or {}
        if entry["status"] is not None and entry["status"] < 300:
            for action in ACTION_BODIES:
                if isinstance(body, dict) and action in body:
                    sent.update((sid, action) for sid in entry["server_ids"])
    return sum(1 for n in sent.values() if n > 1)


def over_limit(stats: Mapping[str, Any]) -> tuple[int, int, dict[str, int]]:
    """(throttled answers, most units over a limit in any window, max units in a window per
    limited key) from the simulator's `/_sim/stats`."""
    throttled = sum(int(s["throttled"]) for s in stats["keys"].values())
    worst, peaks = 0, {}
    for key, s in stats["keys"].items():
        if s["limit"] is not None and s["calls"]:
            peaks[key] = int(s["max_in_window"])
            worst = max(worst, int(s["max_in_window"]) - int(s["limit"]["limit"]))
    return throttled, worst, peaks


async def held_by(db_url: str, worker: str) -> int:
    """Sub-jobs in flight (DISPATCHING, AWAITING) whose lease `worker` holds."""
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                sa.text(
                    "SELECT count(*) FROM subjobs WHERE lease_owner = :w "
                    "AND state IN ('dispatching', 'awaiting')"
                ),
                {"w": worker},
            )
            return int(found.scalar_one())
    finally:
        await engine.dispose()


async def slot_fires(db_url: str) -> tuple[list[tuple[float, str]], int]:
    """The policy fires (slot in epoch seconds, status), in slot order, and the operations the
    policies created."""
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            slots = await conn.execute(
                sa.text("SELECT scheduled_at, status FROM policy_fires ORDER BY scheduled_at")
            )
            ops = await conn.execute(
                sa.text("SELECT count(*) FROM operations WHERE idempotency_key LIKE 'policy:%'")
            )
            return [(r[0].timestamp(), str(r[1])) for r in slots], int(ops.scalar_one())
    finally:
        await engine.dispose()
