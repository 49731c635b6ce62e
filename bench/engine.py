"""Engine benchmarks (`python bench/engine.py [--json] [--quick]`).

(a) plan_100k: plan and persist 100,000 sub-jobs on SQLite and on PostgreSQL through the engine's
    planning loop (a streaming planner stands in for the drivers, so this measures fleet's own
    bookkeeping): seconds and peak RSS of a fresh process. Bar: < 20 s and < 400 MB on both.
(b) unlimited_10k: a 10,000-server stop against the simulator (its own process) with effectively
    unlimited budgets: sub-jobs per second and fleet's CPU milliseconds per sub-job.
(c) limited_mixed: a 2,000-server stop across ECS, BMS and OpenStack against budgets shaped like the
    defaults but with a 3-second window, the simulator enforcing the same limits: actual duration
    over the lower bound the limits imply, and the simulator's throttled count. Bar: ratio <= 1.10
    with 0 throttled.

PostgreSQL comes from the machine's binaries (a throwaway cluster, as in the tests).
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
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import _find_bindir, _free_port  # noqa: E402
from tests.e2e.procs import get_json, post_json, simulator_process, start_worker  # noqa: E402

# --- (a) plan 100k ---------------------------------------------------------------------------------


async def _plan(url: str, count: int) -> float:
    from jobs.config import EngineConfig
    from jobs.migrate import upgrade
    from jobs.operations import Operations
    from jobs.planning import PlanningLoop
    from jobs.ports import FleetSize, PlanEntry, PlanItem
    from jobs.ratelimit import RateLimiter
    from jobs.records import NewOperation, OperationRecord
    from jobs.store import SqlJobStore
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


def _campaign_config(path: Path, db: str, sim: dict[str, dict[str, str]], endpoints: str) -> None:
    hw, os_ = sim["huawei"], sim["openstack"]
    text = f"""
[database]
url = "{db}"
[engine]
poll_interval = 0.5
idle_interval = 0.05
[logging]
format = "json"
level = "warning"
"""
    for line in endpoints.strip().splitlines():
        name, provider, budgets = (p.strip() for p in line.split("|"))
        text += f'[[endpoints]]\nname = "{name}"\nprovider = "{provider}"\nbudgets = {budgets}\n'
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


async def _run_op(db: str, selector: dict[str, object]) -> tuple[str, float]:
    """Create a stop operation in the database and wait (a worker process runs it)."""
    from jobs.operations import Operations
    from jobs.records import NewOperation
    from jobs.states import OperationState
    from jobs.store import SqlJobStore

    done = {
        OperationState.SUCCEEDED,
        OperationState.COMPLETED_WITH_FAILURES,
        OperationState.STOPPED,
    }
    store = SqlJobStore(db)
    try:
        ops = Operations(store)
        view, _ = await ops.create(NewOperation(kind="stop", selector=selector, created_by="bench"))
        started = time.perf_counter()
        while True:
            current = await ops.get(view.operation.id)
            if current.state in done:
                return current.state.value, time.perf_counter() - started
            await asyncio.sleep(0.05)
    finally:
        await store.close()


async def _worker_ready(db: str, worker: subprocess.Popen[bytes]) -> None:
    import sqlalchemy as sa

    from jobs.models import WORKERS
    from jobs.store import SqlJobStore

    store = SqlJobStore(db)
    deadline = time.monotonic() + 60.0
    try:
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with {worker.returncode}")
            async with store.db.read() as conn:
                if (await conn.execute(sa.select(WORKERS.c.id).limit(1))).first() is not None:
                    # Registration comes before the loops and the rest of start-up (policies):
                    # give it the second the bench always gave, now counted from its start.
                    await asyncio.sleep(1.0)
                    return
            await asyncio.sleep(0.05)
        raise SystemExit("the worker did not start")
    finally:
        await store.close()


def _worker_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def campaign(
    world: str, endpoints: str, limits: dict[str, object], selector: dict[str, object]
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "world.toml").write_text(world)
        with simulator_process(tmp / "world.toml", tmp / "sim.log") as url:
            sim = get_json(f"{url}/_sim/endpoints")
            post_json(f"{url}/_sim/limits", limits)
            db = f"sqlite+aiosqlite:///{tmp}/bench.db"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "fleet.cli",
                    "db",
                    "upgrade",
                    "--config",
                    str(tmp / "c.toml"),
                ],
                check=False,
                capture_output=True,
            )
            _campaign_config(tmp / "c.toml", db, sim, endpoints)  # type: ignore[arg-type]
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "fleet.cli",
                    "db",
                    "upgrade",
                    "--config",
                    str(tmp / "c.toml"),
                ],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )
            env = {
                "BENCH_AK": sim["huawei"]["ak"],
                "BENCH_SK": sim["huawei"]["sk"],  # type: ignore[index]
                "BENCH_OS_PASSWORD": sim["openstack"]["password"],
            }  # type: ignore[index]
            worker = start_worker(tmp / "c.toml", "bench", env, tmp / "worker.log")
            try:
                # The clock measures the engine, not Python's start-up: wait until the worker
                # has registered (a fixed 1 s sleep from spawning let a loaded machine start the
                # clock before the worker was up: its start-up was timed as planning).
                asyncio.run(_worker_ready(db, worker))
                cpu0 = _worker_cpu_seconds(worker.pid)
                state, seconds = asyncio.run(_run_op(db, selector))
                cpu = _worker_cpu_seconds(worker.pid) - cpu0
            finally:
                worker.terminate()
                worker.wait(timeout=30)
            stats = get_json(f"{url}/_sim/stats")["keys"]
            requests = get_json(f"{url}/_sim/requests", timeout=60)["requests"]
    spans: dict[str, tuple[float, float]] = {}
    for entry in requests:  # type: ignore[attr-defined]
        key, at = entry["rate_key"], float(entry["time"])
        if key:
            first, last = spans.get(key, (at, at))
            spans[key] = (min(first, at), max(last, at))
    throttled = sum(int(v["throttled"]) for v in stats.values())  # type: ignore[union-attr]
    return {
        "state": state,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "throttled": throttled,
        "stats": stats,
        "spans": spans,
    }


def unlimited_10k(count: int) -> dict[str, float]:
    world = f"seed = 3\nspeed = 1000.0\n[generate]\necs = {count}\nbms = 0\nopenstack = 0\n"
    limits = {"huawei-ecs:action": None}
    big = '{ action = [{ limit = 100000, period = 1, unit = "servers" }] }'
    r = campaign(world, f"ecs | huawei-ecs | {big}", limits, {"endpoints": ["ecs"]})
    acted = count  # every server is a sub-job (already-stopped ones are skipped at planning)
    _report_state("unlimited_10k", r)
    return {
        "subjobs_per_s": round(acted / float(r["seconds"]), 1),  # type: ignore[arg-type]
        "cpu_ms_per_subjob": round(float(r["cpu_seconds"]) * 1000 / acted, 3),  # type: ignore[arg-type]
    }


def _report_state(name: str, r: dict[str, object]) -> None:
    """The JSON keeps the issue's keys; how the operation ended goes to stderr (and fails the
    run when it did not succeed: a fast failure is no measurement)."""
    print(f"{name}: {r['state']} in {float(r['seconds']):.2f} s", file=sys.stderr)  # type: ignore[arg-type]
    if r["state"] != "succeeded":
        raise SystemExit(f"{name}: the operation ended {r['state']}")


PERIOD = 3.0


def limited_mixed() -> dict[str, object]:
    # 2,000 servers: ECS 1000, BMS 400, OpenStack 600, every budget scaled to a 3-second window.
    world = "seed = 5\nspeed = 20.0\n[generate]\necs = 1000\nbms = 400\nopenstack = 600\n"
    p = PERIOD
    limits = {
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
    r = campaign(world, endpoints, limits, {})
    stats: dict[str, dict[str, object]] = r["stats"]  # type: ignore[assignment]
    # Lower bound: the slowest key must spread its units over windows; the first window is free.
    bounds = []
    for key, lim in limits.items():
        used = int(stats.get(key, {}).get("units", 0) or 0)  # type: ignore[arg-type]
        if used and isinstance(lim, dict):
            bounds.append((math.ceil(used / int(lim["limit"])) - 1) * p)
    settle = 20.0 / 20.0  # a stop takes 20 simulated seconds at speed 20
    lower = max(bounds, default=0.0) + settle
    seconds = float(r["seconds"])  # type: ignore[arg-type]
    _report_state("limited_mixed", r)
    # Saturation of the slowest key (stderr only): its first to last call at the simulator
    # against the (ceil(units/limit)-1) periods the limit forces between them.
    spans: dict[str, tuple[float, float]] = r["spans"]  # type: ignore[assignment]
    for key, lim in limits.items():
        used = int(stats.get(key, {}).get("units", 0) or 0)  # type: ignore[arg-type]
        need = (math.ceil(used / int(lim["limit"])) - 1) * p if isinstance(lim, dict) else 0.0
        if key in spans and need >= max(bounds, default=0.0) > 0:
            span = spans[key][1] - spans[key][0]
            print(
                f"limited_mixed: {key} calls span {span:.2f} s, limit needs {need:.2f} s "
                f"(saturation {need / span:.3f})",
                file=sys.stderr,
            )
    return {
        "duration_s": round(seconds, 2),
        "lower_bound_s": round(lower, 2),
        "ratio": round(seconds / lower, 3),
        "throttled": r["throttled"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--only", choices=["plan", "unlimited", "mixed"])
    parser.add_argument("--plan-child")
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    if args.plan_child:
        plan_child(args.plan_child, args.count)
        return
    out: dict[str, object] = {}
    if args.only in (None, "plan"):
        out["plan_100k"] = plan_100k(10_000 if args.quick else 100_000)
    if args.only in (None, "unlimited"):
        out["unlimited_10k"] = unlimited_10k(1_000 if args.quick else 10_000)
    if args.only in (None, "mixed"):
        out["limited_mixed"] = limited_mixed()
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
