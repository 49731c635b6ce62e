"""Engine benchmarks (`python bench/engine.py [--json] [--quick] [--only X] [--window S]`), X one
of plan, unlimited, singles, mixed, restart.

(a) plan_100k: plan and persist 100,000 sub-jobs on SQLite and on PostgreSQL through the engine's
    planning loop (a streaming planner stands in for the drivers, so this measures fleet's own
    bookkeeping): seconds and peak RSS of a fresh process. Bar: < 20 s and < 400 MB on both.
(b) unlimited_10k: a 10,000-server stop against the simulator (its own process) with effectively
    unlimited budgets, on SQLite and on PostgreSQL (`--db`): sub-jobs per second and the CPU
    milliseconds per sub-job of the service and, on PostgreSQL, of the database server too.
(c) limited_mixed: a 2,000-server stop across ECS, BMS and OpenStack against budgets shaped like the
    defaults but with a short window (`--window`, 3 s), the simulator enforcing the same limits:
    actual duration over the lower bound the limits imply, and the simulator's throttled count.
    Bar: ratio <= 1.10 with 0 throttled. eta_mixed: the ETA of a dry run of the same targets,
    asked just before, against the run's duration (within 15%).
(d) unlimited_singles: an OpenStack stop (one server per call) with unlimited budgets, on both
    databases like (b): calls per second and CPU milliseconds per call, claim to poll.
(e) restart: `fleet serve` killed with SIGKILL while calls are in flight and started again at
    once: seconds from the kill until the killed process's rows move (bench/restart.py). Bar: < 5 s.

The campaigns run as users run fleet: `fleet serve` gets the operation through the REST API, and
durations are the operation's own `created_at` to `finished_at`. PostgreSQL comes from the
machine's binaries (a throwaway cluster, as in the tests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs.states import FINISHED_OPERATIONS  # noqa: E402
from tests.api.live import _stop, _wait_ready  # noqa: E402
from tests.conftest import _find_bindir, _free_port  # noqa: E402
from tests.e2e.procs import (  # noqa: E402
    cpu_seconds,
    get_json,
    post_json,
    postgres_cpu_seconds,
    simulator_process,
)

# --- (a) plan 100k ---------------------------------------------------------------------------------


async def _plan(url: str, count: int) -> float:
    from jobs.config import EngineConfig
    from jobs.loops.planning import PlanningLoop
    from jobs.operations import Operations
    from jobs.ports import FleetSize, PlanEntry, PlanItem
    from jobs.ratelimit import RateLimiter
    from jobs.records import NewOperation, OperationRecord
    from jobs.store import SqlJobStore
    from jobs.store.migrate import upgrade
    from jobs.testing import FakeExecutor

    class StreamingPlanner:
        async def plan(self, operation: OperationRecord) -> AsyncIterator[PlanEntry]:
            for i in range(count):
                yield PlanItem(
                    target_id=f"ep/{i:08d}",
                    rate_key=f"ep{i % 4}:action",
                    batch_key=f"ep{i % 4}:stop:0",
                    payload={
                        "endpoint": f"ep{i % 4}",
                        "server_id": f"{i:08d}",
                        "status": "running",
                    },
                    scope=f"ep{i % 4}",
                )
            for j in range(4):
                yield FleetSize(scope=f"ep{j}", servers=count)

    await asyncio.to_thread(upgrade, url)
    store = SqlJobStore(url)
    try:
        from jobs.clock import SystemClock

        ops = Operations(store)
        view, _ = await ops.create(NewOperation(kind="stop", created_by="bench"))
        loop = PlanningLoop(
            store,
            StreamingPlanner(),
            FakeExecutor(),
            RateLimiter(SystemClock()),
            SystemClock(),
            EngineConfig(worker="bench"),
        )
        started = time.perf_counter()
        while (await ops.get(view.operation.id)).operation.planned_at is None:
            await loop.run_once()
        elapsed = time.perf_counter() - started
        assert (await ops.get(view.operation.id)).operation.targets == count
        return elapsed
    finally:
        await store.close()


def plan_child(url: str, count: int) -> None:
    """Runs in a fresh process: prints seconds and peak RSS as JSON."""
    seconds = asyncio.run(_plan(url, count))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mb": round(rss_mb, 1)}))


def _child(url: str, count: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--plan-child", url, "--count", str(count)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@contextmanager
def postgres() -> Iterator[str]:
    bindir = _find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL binaries not found (scripts/ensure-postgres.sh)")
    work = Path(tempfile.mkdtemp(prefix="fleet-bench-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(work, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(work / "d"),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(work / "d"),
            "-l",
            str(work / "log"),
            "-w",
            "-o",
            f"-p {port} -k {work} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(work / "d"), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(work, ignore_errors=True)


def plan_100k(count: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = _child(f"sqlite+aiosqlite:///{tmp}/bench.db", count)
    with postgres() as url:
        pg = _child(url, count)
    return {"sqlite": sqlite, "postgresql": pg}


# --- (b) and (c): campaigns against the simulator process -------------------------------------------


def _campaign_config(
    path: Path,
    db: str,
    sim: dict[str, dict[str, str]],
    endpoints: str,
    poll_interval: float,
    stop_seconds: float,
) -> None:
    hw, os_ = sim["huawei"], sim["openstack"]
    text = f"""
[database]
url = "{db}"
[service]
port = 0
[engine]
poll_interval = {poll_interval}
idle_interval = 0.05
[logging]
format = "json"
level = "warning"
"""
    for line in endpoints.strip().splitlines():
        name, provider, budgets = (p.strip() for p in line.split("|"))
        text += f'[[endpoints]]\nname = "{name}"\nprovider = "{provider}"\nbudgets = {budgets}\n'
        text += f"action_seconds = {{ stop = {stop_seconds} }}\n"
        if provider == "openstack":
            text += (
                f'flavour = "easystack"\nauth_url = "{os_["auth_url"]}"\n'
                f'project_name = "{os_["project_name"]}"\nregion = "{os_["region_name"]}"\n'
                f'[endpoints.credentials]\nusername = "{os_["username"]}"\n'
                'password_env = "BENCH_OS_PASSWORD"\nuser_domain_name = "Default"\n'
                'project_domain_name = "Default"\n'
            )
        else:
            text += (
                f'ecs_url = "{hw["ecs_url"]}"\nbms_url = "{hw["bms_url"]}"\n'
                f'iam_url = "{hw["iam_url"]}"\nproject_id = "{hw["project_id"]}"\n'
                f'region = "{hw["region"]}"\n'
                'credentials = { ak_env = "BENCH_AK", sk_env = "BENCH_SK" }\n'
            )
    path.write_text(text)


class Service:
    """`fleet serve` (the REST API with its engine) in its own process, as users run it."""

    def __init__(self, url: str, token: str, pid: int) -> None:
        self.url, self.token, self.pid = url, token, pid

    def call(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as resp:  # loopback only
            data: dict[str, Any] = json.loads(resp.read())
            return data

    def run(self, body: dict[str, object]) -> dict[str, Any]:
        """Create an operation through the API; return its view once it has ended."""
        op = self.call("POST", "/v1/operations", body)
        while op["state"] not in DONE:
            time.sleep(0.1)
            op = self.call("GET", f"/v1/operations/{op['id']}")
        return op


DONE = {state.value for state in FINISHED_OPERATIONS}


@contextmanager
def service(config: Path, tmp: Path, env: dict[str, str]) -> Iterator[Service]:
    full_env = {**os.environ, **env, "FLEET_BOOTSTRAP_TOKEN_FILE": str(tmp / "admin.token")}
    subprocess.run(
        [sys.executable, "-m", "fleet.cli", "db", "upgrade", "--config", str(config)],
        check=True,
        capture_output=True,
        cwd=ROOT,
        env=full_env,
    )
    url_file, log = tmp / "url", tmp / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fleet.cli",
                "serve",
                "--config",
                str(config),
                "--url-file",
                str(url_file),
            ],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        svc = Service(
            _wait_ready(proc, url_file, log), (tmp / "admin.token").read_text().strip(), proc.pid
        )
        # Start-up (policies, recovery) settles before the clock starts.
        time.sleep(1.0)
        yield svc
    finally:
        _stop(proc)


def _seconds(op: dict[str, object], end: str = "finished_at") -> float:
    """From the operation's creation to `end`, by the service's own clock."""
    t0 = datetime.fromisoformat(str(op["created_at"]))
    return (datetime.fromisoformat(str(op[end])) - t0).total_seconds()


def _cpu_seconds(pid: int) -> float:
    return cpu_seconds([pid])


@dataclass(frozen=True)
class Run:
    state: str
    seconds: float  # the operation's creation to its end, by the service's clock
    planned_s: float  # creation to planned
    created_at: float  # epoch seconds (the simulator logs epoch times)
    eta_s: float | None  # the dry run's ETA, when one was asked first
    cpu_seconds: float  # the service process, during the run
    db_cpu_seconds: float  # the PostgreSQL server during the run (0 on SQLite: in the service)
    throttled: int  # 429s the simulator answered
    units: dict[str, int]  # units the simulator counted per rate key
    spans: dict[str, tuple[float, float]]  # first and last request per rate key (epoch)
    calls: dict[str, int] = field(default_factory=dict)  # calls per rate key, 429s included
    statuses: dict[str, int] = field(default_factory=dict)  # servers per status at the end


def _get(url: str) -> Any:
    """A simulator document (the request log can be large: a longer timeout)."""
    return get_json(url, timeout=60)


def _spans(requests: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    spans: dict[str, tuple[float, float]] = {}
    for entry in requests:
        key, at = entry["rate_key"], float(entry["time"])
        if key:
            first, last = spans.get(key, (at, at))
            spans[key] = (min(first, at), max(last, at))
    return spans


def campaign(
    world: str,
    endpoints: str,
    limits: dict[str, Any],
    targets: dict[str, Any],
    *,
    poll_interval: float = 0.5,
    stop_seconds: float = 20.0,
    dry_run_first: bool = False,
    db_url: str | None = None,
) -> Run:
    """Run a stop through `fleet serve` against a simulator process with `limits` enforced, on
    `db_url` (a fresh PostgreSQL database) or, without one, a SQLite file of the run's own.

    With BENCH_TRACE=path set, the simulator's request log is written to `path` and the
    service's log to `path.log` (where a run's time went)."""
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "world.toml").write_text(world)
        with simulator_process(tmp / "world.toml", tmp / "sim.log") as url:
            sim = _get(f"{url}/_sim/endpoints")
            post_json(f"{url}/_sim/limits", limits)
            db = db_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
            pg_port = _pg_port(db_url)
            _campaign_config(tmp / "c.toml", db, sim, endpoints, poll_interval, stop_seconds)
            env = {
                "BENCH_AK": sim["huawei"]["ak"],
                "BENCH_SK": sim["huawei"]["sk"],
                "BENCH_OS_PASSWORD": sim["openstack"]["password"],
            }
            with service(tmp / "c.toml", tmp, env) as svc:
                eta: float | None = None
                if dry_run_first:
                    body = {"action": "stop", "targets": targets, "dry_run": True}
                    eta = float(svc.call("POST", "/v1/operations", body)["plan"]["eta_seconds"])
                    post_json(f"{url}/_sim/limits", limits)  # the dry run's listing: a new window
                cpu0, db0 = _cpu_seconds(svc.pid), _db_cpu(pg_port)
                op = svc.run({"action": "stop", "targets": targets})
                cpu, db_cpu = _cpu_seconds(svc.pid) - cpu0, _db_cpu(pg_port) - db0
            stats: dict[str, Any] = _get(f"{url}/_sim/stats")["keys"]
            requests: list[dict[str, Any]] = _get(f"{url}/_sim/requests")["requests"]
            statuses = Counter(s["status"] for s in _get(f"{url}/_sim/servers")["servers"])
            if os.environ.get("BENCH_TRACE"):
                Path(os.environ["BENCH_TRACE"]).write_text(json.dumps(requests))
                shutil.copy(tmp / "serve.log", os.environ["BENCH_TRACE"] + ".log")
    return Run(
        state=str(op["state"]),
        seconds=_seconds(op),
        planned_s=_seconds(op, "planned_at"),
        created_at=datetime.fromisoformat(str(op["created_at"])).timestamp(),
        eta_s=eta,
        cpu_seconds=cpu,
        db_cpu_seconds=db_cpu,
        throttled=sum(int(v["throttled"]) for v in stats.values()),
        units={k: int(v.get("units") or 0) for k, v in stats.items()},
        spans=_spans(requests),
        calls={k: int(v["calls"]) for k, v in stats.items()},
        statuses=dict(statuses),
    )


def _on_databases(dbs: list[str], run: Callable[[str | None], dict[str, float]]) -> dict[str, Any]:
    """`run` on each database asked for (None: a SQLite file; else a PostgreSQL URL of a
    throwaway cluster): `{"sqlite": {...}, "postgresql": {...}}`."""
    out: dict[str, Any] = {}
    for db in dbs:
        if db == "sqlite":
            out[db] = run(None)
        else:
            with postgres() as url:
                out[db] = run(url)
    return out


def unlimited_10k(count: int, dbs: list[str]) -> dict[str, Any]:
    # a stop settles in 20 simulated seconds: 0.02 s at speed 1000
    world = f"seed = 3\nspeed = 1000.0\n[generate]\necs = {count}\nbms = 0\nopenstack = 0\n"
    limits: dict[str, Any] = {"huawei-ecs:action": None}
    big = '{ action = [{ limit = 100000, period = 1, unit = "servers" }] }'

    def run(db_url: str | None) -> dict[str, float]:
        r = campaign(
            world,
            f"ecs | huawei-ecs | {big}",
            limits,
            {"endpoints": ["ecs"]},
            stop_seconds=0.02,
            db_url=db_url,
        )
        acted = count  # every server is a sub-job (already-stopped ones are skipped at planning)
        _report_state(f"unlimited_10k ({_db_name(db_url)})", r)
        return {
            "subjobs_per_s": round(acted / r.seconds, 1),
            "cpu_ms_per_subjob": round(r.cpu_seconds * 1000 / acted, 3),
            "db_cpu_ms_per_subjob": round(r.db_cpu_seconds * 1000 / acted, 3),
        }

    return _on_databases(dbs, run)


def unlimited_singles(count: int, dbs: list[str]) -> dict[str, Any]:
    """An OpenStack stop (one server per call) with unlimited budgets: the per-call cost that
    decides how fast a window of a per-server budget leaves."""
    world = f"seed = 4\nspeed = 1000.0\n[generate]\necs = 0\nbms = 0\nopenstack = {count}\n"
    limits: dict[str, Any] = {"openstack:action": None}
    free = "{ action = [], show = [], list = [] }"

    def run(db_url: str | None) -> dict[str, float]:
        r = campaign(
            world,
            f"es | openstack | {free}",
            limits,
            {"endpoints": ["es"]},
            stop_seconds=0.02,
            db_url=db_url,
        )
        acted = r.units.get("openstack:action", 0)
        _report_state(f"unlimited_singles ({_db_name(db_url)})", r)
        return {
            "calls": acted,
            "calls_per_s": round(acted / r.seconds, 1),
            "cpu_ms_per_call": round(r.cpu_seconds * 1000 / max(1, acted), 3),
            "db_cpu_ms_per_call": round(r.db_cpu_seconds * 1000 / max(1, acted), 3),
        }

    return _on_databases(dbs, run)


def _db_name(db_url: str | None) -> str:
    return "postgresql" if db_url else "sqlite"


def _pg_port(db_url: str | None) -> int | None:
    return None if db_url is None else int(db_url.rsplit(":", 1)[1].split("/", 1)[0])


def _db_cpu(port: int | None) -> float:
    return 0.0 if port is None else postgres_cpu_seconds(port)


def _report_state(name: str, r: Run) -> None:
    """The JSON keeps the issue's keys; how the operation ended goes to stderr (and fails the
    run when it did not succeed: a fast failure is no measurement)."""
    print(f"{name}: {r.state} in {r.seconds:.2f} s", file=sys.stderr)
    if r.state != "succeeded":
        raise SystemExit(f"{name}: the operation ended {r.state}")


def limited_mixed(period: float = 3.0) -> tuple[dict[str, object], dict[str, object]]:
    """(limited_mixed, eta_mixed): the run against its lower bound, and the dry run's ETA
    (asked first, on the same world) against the run's duration.

    Every time is the production one scaled by 60 s / `period` (20 for the default 3 s): the
    windows (60 s -> 3 s), a stop (20 s -> 1 s: the simulator's speed, and the endpoints'
    `action_seconds`) and the poll interval (the default 2 s -> 0.1 s). What is not scaled
    (listing the clouds, writing the plan, each call's round trip) weighs 20 times more than it
    would against the real windows."""
    scale = 60.0 / period
    poll, stop = 2.0 / scale, 20.0 / scale
    # 2,000 servers: ECS 1000, BMS 400, OpenStack 600, every budget scaled to the window.
    world = f"seed = 5\nspeed = {scale}\n[generate]\necs = 1000\nbms = 400\nopenstack = 600\n"
    p = period
    limits: dict[str, Any] = {
        "huawei-ecs:action": {"limit": 1000, "period": p, "unit": "servers"},
        "huawei-bms:action": {"limit": 50, "period": p},
        "huawei-bms:jobs": {"limit": 2000, "period": p},
        "huawei-bms:detail": {"limit": 500, "period": p},
        "openstack:action": {"limit": 120, "period": p},
    }
    endpoints = f"""
ecs | huawei-ecs | {{ action = [{{ limit = 1000, period = {p}, unit = "servers" }}] }}
bms | huawei-bms | {{ action = [{{ limit = 50, period = {p} }}], jobs = [{{ limit = 2000, period = {p} }}], detail = [{{ limit = 500, period = {p} }}] }}
es | openstack | {{ action = [{{ limit = 120, period = {p} }}], show = [{{ limit = 100000, period = {p} }}], list = [{{ limit = 1000, period = {p} }}] }}
"""
    targets = {"endpoints": ["ecs", "bms", "es"]}
    r = campaign(
        world, endpoints, limits, targets, poll_interval=poll, stop_seconds=stop, dry_run_first=True
    )
    _report_state("limited_mixed", r)
    # Lower bound: the slowest key must spread its units over windows (the first window is
    # free), then its last server needs a stop's time to settle.
    need = {
        key: (math.ceil(r.units[key] / int(lim["limit"])) - 1) * p
        for key, lim in limits.items()
        if r.units.get(key)
    }
    lower = max(need.values(), default=0.0) + stop
    # Where the time went (stderr): planning, then each key's first and last request; the
    # slowest key's saturation is the periods its limit forces over its actual span.
    print(f"limited_mixed: planned {r.planned_s:.2f} s after creation", file=sys.stderr)
    for key, (first, last) in sorted(r.spans.items()):
        at = f"{first - r.created_at:.2f} .. {last - r.created_at:.2f} s"
        print(f"limited_mixed: {key} requests {at}", file=sys.stderr)
    for key, periods in need.items():
        if periods >= max(need.values()) > 0 and key in r.spans:
            span = r.spans[key][1] - r.spans[key][0]
            print(
                f"limited_mixed: {key} calls span {span:.2f} s, limit needs {periods:.2f} s "
                f"(saturation {periods / span:.3f})",
                file=sys.stderr,
            )
    assert r.eta_s is not None
    return {
        "duration_s": round(r.seconds, 2),
        "lower_bound_s": round(lower, 2),
        "ratio": round(r.seconds / lower, 3),
        "throttled": r.throttled,
    }, {
        "eta_s": round(r.eta_s, 2),
        "duration_s": round(r.seconds, 2),
        "error": round(abs(r.eta_s - r.seconds) / r.seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--only", choices=["plan", "unlimited", "singles", "mixed", "restart"])
    parser.add_argument(
        "--window", type=float, default=3.0, help="limited_mixed: the budgets' period (s)"
    )
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgresql", "both"],
        default="both",
        help="unlimited and singles: the database(s) of the service",
    )
    parser.add_argument("--plan-child")
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    if args.plan_child:
        plan_child(args.plan_child, args.count)
        return
    out: dict[str, object] = {}
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if args.only in (None, "plan"):
        out["plan_100k"] = plan_100k(10_000 if args.quick else 100_000)
    if args.only in (None, "unlimited"):
        out["unlimited_10k"] = unlimited_10k(1_000 if args.quick else 10_000, dbs)
    if args.only in (None, "singles"):
        out["unlimited_singles"] = unlimited_singles(300 if args.quick else 2_000, dbs)
    if args.only in (None, "mixed"):
        out["limited_mixed"], out["eta_mixed"] = limited_mixed(args.window)
    if args.only in (None, "restart"):
        from bench.restart import restart

        out["restart"] = restart(3 if args.quick else 10)
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
