"""End-to-end campaigns at scale (`python bench/scale.py [--json] [--n N] [--mode M] [--db D]
[--split]`).

Each run is a stop of N ECS servers (10,000, 100,000 and 1,000,000 by default) sent to
`fleet serve` through the REST API, against the simulator in its own process, on SQLite and on
PostgreSQL (a throwaway cluster from the machine's binaries), in one of two modes:

- unlimited: one budget of 100,000 servers per second (the simulator enforces none), so the run
  measures fleet's own cost;
- limited: N / 50 servers (at least 1,000) per 1 s window, enforced by the simulator too.

Per run: makespan (the operation's `created_at` to `finished_at`, by the service's clock) and its
lower bound ((windows the budget needs - 1) x the window + one stop's settling time), the service's
CPU milliseconds per sub-job (user + system, from /proc), its peak RSS (VmHWM from /proc, so the
whole life of the process: start-up, planning and the run; `peak_rss_planned_mb` is the same
read when the operation is first seen planned), the database's size at the end, and
the p95 of `GET /v1/operations/{id}` while the run goes on (one client asking every 50 ms). With
several sizes, a least-squares fit of log(cost) against log(N) says how makespan and CPU grow (an
exponent of 1.0 is linear). The JSON has {"runs": [{"n", "mode", "db", "makespan_s",
"lower_bound_s", "cpu_ms_per_subjob", "peak_rss_mb", "get_op_p95_ms", ...}], "fit": {...}}.

`--split` runs `fleet serve --role engine` and `fleet serve --role api` on the one database
instead of one `fleet serve` (decision D68): the GETs go to the API process, CPU is both
processes' sum, `peak_rss_mb` is the engine's (the process that holds the operation) and
`api_peak_rss_mb` the API's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.engine import (  # noqa: E402
    DONE,
    Service,
    _campaign_config,
    _cpu_seconds,
    _get,
    _seconds,
    postgres,
)
from bench.load import services  # noqa: E402
from tests.e2e.procs import post_json, simulator_with_pid  # noqa: E402

STOP_SECONDS = 0.02  # a stop settles in 20 simulated seconds: 0.02 s at speed 1000
SIZES = (10_000, 100_000, 1_000_000)


def _limit(n: int, mode: str) -> int:
    return 100_000 if mode == "unlimited" else max(1_000, n // 50)


def _peak_rss_mb(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return math.nan


def _p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else math.nan
    return statistics.quantiles(values, n=20)[18]


def _watch(svc: Service, op_id: str, engine: int) -> tuple[dict[str, Any], list[float], float]:
    """GET the operation every 50 ms until it ends: its last view, each GET's latency (ms), and
    the engine process's peak RSS (VmHWM, MB) when the operation was first seen planned."""
    latencies: list[float] = []
    at_planned = math.nan
    while True:
        t0 = time.perf_counter()
        op = svc.call("GET", f"/v1/operations/{op_id}")
        latencies.append((time.perf_counter() - t0) * 1000)
        if op.get("planned_at") and math.isnan(at_planned):
            at_planned = _peak_rss_mb(engine)
        if op["state"] in DONE:
            return op, latencies, at_planned
        time.sleep(0.05)


async def _pg_size(url: str) -> int:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            size = (
                await conn.execute(text("SELECT pg_database_size(current_database())"))
            ).scalar()
            return int(size or 0)
    finally:
        await engine.dispose()


def _db_size_mb(url: str, tmp: Path) -> float:
    if url.startswith("sqlite"):
        size = sum(p.stat().st_size for p in tmp.glob("bench.db*"))
    else:
        size = asyncio.run(_pg_size(url))
    return round(size / 2**20, 1)


@contextmanager
def _database(db: str, tmp: Path) -> Iterator[str]:
    if db == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp}/bench.db"
    else:
        with postgres() as url:
            yield url


def run(n: int, mode: str, db: str, split: bool = False) -> dict[str, Any]:
    limit = _limit(n, mode)
    world = f"seed = 7\nspeed = 1000.0\n[generate]\necs = {n}\nbms = 0\nopenstack = 0\n"
    budget = f'{{ action = [{{ limit = {limit}, period = 1, unit = "servers" }}] }}'
    limits: dict[str, Any] = {
        "huawei-ecs:action": (
            None if mode == "unlimited" else {"limit": limit, "period": 1, "unit": "servers"}
        )
    }
    with tempfile.TemporaryDirectory() as tmp_s, _database(db, Path(tmp_s)) as url:
        tmp = Path(tmp_s)
        (tmp / "world.toml").write_text(world)
        # a world of a million servers takes minutes to generate on a loaded machine
        started = simulator_with_pid(
            tmp / "world.toml", tmp / "sim.log", start_seconds=60 + n / 1000
        )
        with started as (sim_url, _):
            sim = _get(f"{sim_url}/_sim/endpoints")
            post_json(f"{sim_url}/_sim/limits", limits)
            _campaign_config(
                tmp / "c.toml", url, sim, f"ecs | huawei-ecs | {budget}", 0.5, STOP_SECONDS
            )
            env = {
                "BENCH_AK": sim["huawei"]["ak"],
                "BENCH_SK": sim["huawei"]["sk"],
                "BENCH_OS_PASSWORD": sim["openstack"]["password"],
            }
            with services(tmp / "c.toml", tmp, env, split) as (svc, pids):
                engine = pids[-1]
                cpu0 = sum(_cpu_seconds(pid) for pid in pids)
                body = {"action": "stop", "targets": {"endpoints": ["ecs"]}}
                created = svc.call("POST", "/v1/operations", body)
                op, latencies, rss_planned = _watch(svc, str(created["id"]), engine)
                cpu = sum(_cpu_seconds(pid) for pid in pids) - cpu0
                rss = _peak_rss_mb(engine)
                api_rss = _peak_rss_mb(svc.pid) if split else None
            stats: dict[str, Any] = _get(f"{sim_url}/_sim/stats")["keys"]
        size = _db_size_mb(url, tmp)
    makespan = _seconds(op)
    lower = (math.ceil(n / limit) - 1) * 1.0 + STOP_SECONDS
    result = {
        "n": n,
        "mode": mode,
        "db": db,
        "role": "api+engine" if split else "all",
        "state": op["state"],
        "makespan_s": round(makespan, 2),
        "planned_s": round(_seconds(op, "planned_at"), 2),
        "lower_bound_s": round(lower, 2),
        "ratio": round(makespan / lower, 2),
        "cpu_ms_per_subjob": round(cpu * 1000 / n, 3),
        "peak_rss_mb": rss,
        "peak_rss_planned_mb": rss_planned,
        "api_peak_rss_mb": api_rss,
        "db_size_mb": size,
        "get_op_p95_ms": round(_p95(latencies), 1),
        "get_op_count": len(latencies),
        "throttled": sum(int(v["throttled"]) for v in stats.values()),
    }
    print(json.dumps(result), file=sys.stderr)
    return result


def _exponent(points: list[tuple[int, float]]) -> float | None:
    """The slope of log(cost) against log(N) (least squares): 1.0 is linear."""
    pts = [(math.log(n), math.log(c)) for n, c in points if c > 0]
    if len({x for x, _ in pts}) < 2:
        return None
    mx = statistics.fmean(x for x, _ in pts)
    my = statistics.fmean(y for _, y in pts)
    num = sum((x - mx) * (y - my) for x, y in pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return round(num / den, 3)


def fit(runs: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for key in sorted({(r["db"], r["mode"]) for r in runs}):
        mine = [r for r in runs if (r["db"], r["mode"]) == key]
        out[f"{key[0]}/{key[1]}"] = {
            "makespan_exponent": _exponent([(r["n"], r["makespan_s"]) for r in mine]),
            "cpu_exponent": _exponent([(r["n"], r["cpu_ms_per_subjob"] * r["n"]) for r in mine]),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    parser.add_argument("--n", type=int, action="append", help="sizes (default 10k, 100k, 1M)")
    parser.add_argument("--mode", choices=["unlimited", "limited"], default="unlimited")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], action="append")
    parser.add_argument(
        "--split", action="store_true", help="an API process and an engine process (D68)"
    )
    args = parser.parse_args()
    sizes = args.n or list(SIZES)
    if any(n < 1 for n in sizes):
        parser.error("--n: a size must be at least 1")
    dbs = args.db or ["sqlite", "postgresql"]
    runs = [run(n, args.mode, db, args.split) for n in sizes for db in dbs]
    out = {"runs": runs, "fit": fit(runs)}
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
