"""replicas: three `fleet serve` replicas on one PostgreSQL database, as one fleet.

1. Budgets and failover (`tests/e2e/replica_runs.kill_run`, the e2e test's run): stops on the
   three dialects, created through three replicas, saturate 2 s budgets (the simulator's and
   fleet's alike) for several windows, while a policy fires every 5 s; the policy leader is
   killed with SIGKILL once it holds sub-jobs, then another replica. Reported: the simulator's
   throttled answers, the most units over a key's limit in any window, servers that got one
   action twice, and per kill the seconds until the killed replica's sub-jobs (and the scheduler,
   for the leader) were taken over.
2. Unlimited throughput: a stop of `--servers` ECS servers without any budget, on one replica and
   on three (fresh database and simulator each; a stop settles in 0.02 s and fleet is told so,
   and the simulator's action limit is lifted); `unlimited_speedup` is one replica's time over
   three replicas' time (>= 0.9: nothing lost to coordination), `unlimited_cpu_ratio` the CPU
   the replicas and PostgreSQL spent on it, three replicas' over one's (<= 1.1), `idle_cpu_per_s`
   what they cost before the operation, doing nothing. These replicas run the product's idle
   interval (0.5 s), as users do; the first run's are woken every 0.1 s, for quick takeovers.
3. The shared budget's own cost (`ledger`): three limiters on one database granting calls on a
   key whose budget never binds, as fast as they can, one call at a time per limiter and 20 at a
   time: grants per second and the mean wait from asking to the grant.

PostgreSQL is a throwaway cluster of this machine's binaries (`bench.engine.postgres`). Loopback
only; every wait is bounded. Bars: 0 throttled, max_over_limit <= 0, 0 duplicates, takeover_s <
10; the exit status is 1 otherwise.

    python bench/replicas.py [--json] [--servers 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine import postgres
from jobs.clock import SystemClock
from jobs.ratelimit import Budget
from jobs.sharedlimit import SharedRateLimiter
from jobs.store import SqlJobStore
from jobs.store.budgets import SqlLedger
from jobs.store.migrate import upgrade
from tests.e2e.replica_runs import kill_run, unlimited_run

TAKEOVER_BAR = 10.0


async def _database(server: str, name: str) -> str:
    """A new database on the bench's cluster (each run starts from an empty one)."""
    engine = create_async_engine(server, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    return server.rsplit("/", 1)[0] + f"/{name}"


async def _ledger_rate(
    url: str, replicas: int = 3, calls: int = 300, concurrency: int = 20
) -> dict[str, float]:
    """The shared budget's own cost: `replicas` limiters (ledgers of their own, as replicas have)
    in this process send `calls` calls each from `concurrency` tasks, as fast as grants come, on
    a key whose budget never binds; grants per second and the mean wait from acquire to grant."""
    await asyncio.to_thread(upgrade, url)
    store = SqlJobStore(url)
    clock = SystemClock()
    waits: list[float] = []

    async def one(limiter: SharedRateLimiter) -> None:
        for _ in range(calls // concurrency):
            asked = time.monotonic()
            async with limiter.sending("bench:action"):
                waits.append(time.monotonic() - asked)

    try:
        limiters = []
        for i in range(replicas):
            limiter = SharedRateLimiter(clock, SqlLedger(store.db, f"bench-{i}", clock))
            limiter.configure("bench:action", [Budget(1_000_000, 60.0)])
            limiters.append(limiter)
        started = time.monotonic()
        await asyncio.gather(*(one(limiter) for limiter in limiters for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    finally:
        await store.close()
    return {
        "grants_per_s": round(len(waits) / elapsed, 1),
        "mean_grant_ms": round(1000 * sum(waits) / len(waits), 2),
    }


async def _bench(server: str, servers: int) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="fleet-bench-replicas-"))
    out: dict[str, object] = {"replicas": 3, "load_average_before": round(os.getloadavg()[0], 2)}
    started = time.monotonic()
    (root / "kills").mkdir()
    run = await kill_run(root / "kills", await _database(server, "kills"))
    out.update(
        throttled=run.throttled,
        max_over_limit=run.max_over_limit,
        peaks=run.peaks,
        duplicates=run.duplicates,
        takeover_s=round(max(run.takeovers), 2),
        takeovers_s=[round(t, 2) for t in run.takeovers],
        operations=sorted(run.states),
        left_running=len(run.left_running),
        policy_slots=len(run.slots),
        limited_run_s=round(run.seconds, 1),
    )
    out["ledger"] = {
        f"concurrency_{n}": await _ledger_rate(await _database(server, f"ledger{n}"), concurrency=n)
        for n in (1, 20)
    }
    seconds, cpu, idle = {}, {}, {}
    for count in (1, 3):
        (root / f"u{count}").mkdir()
        url = await _database(server, f"unlimited{count}")
        r = await unlimited_run(root / f"u{count}", url, count, servers)
        seconds[count], cpu[count], idle[count] = r.seconds, r.cpu_s, r.idle_cpu_per_s
    out.update(
        unlimited_servers=servers,
        unlimited_s={str(k): round(v, 2) for k, v in seconds.items()},
        unlimited_speedup=round(seconds[1] / seconds[3], 2),
        # CPU seconds of the replicas and PostgreSQL per server stopped; the ratio is three
        # replicas' cost over one's (<= 1.1: coordination costs under 10%)
        unlimited_cpu_ms_per_server={str(k): round(v * 1000 / servers, 3) for k, v in cpu.items()},
        unlimited_cpu_ratio=round(cpu[3] / cpu[1], 2),
        # CPU seconds per second of the replicas and PostgreSQL before the operation, idle
        idle_cpu_per_s={str(k): round(v, 3) for k, v in idle.items()},
        load_average_after=round(os.getloadavg()[0], 2),
        runtime_s=round(time.monotonic() - started, 1),
    )
    out["bar_met"] = (
        run.throttled == 0
        and run.max_over_limit <= 0
        and run.duplicates == 0
        and max(run.takeovers) < TAKEOVER_BAR
        and run.states == {"succeeded"}
        and not run.left_running
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--servers", type=int, default=10_000, help="ECS servers of the unlimited stop"
    )
    args = parser.parse_args(argv)
    if args.servers < 1:
        parser.error("--servers: must be >= 1")
    with postgres() as server:
        result = asyncio.run(_bench(server, args.servers))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:22} {value}")
    return 0 if result["bar_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
