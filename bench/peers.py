"""peers: fleet against what users would otherwise run, on the same simulated fleet, in one run.

    python bench/peers.py [--json] [--window 3] [--rounds 1] [--es 500] [--ecs 5000]
                          [--only easystack|huawei]

Two tasks, each on a world of that many ACTIVE servers (`fleet simulate`, its own process, a
fresh one per run):

- `easystack-stop-<N>`: stop `--es` EasyStack servers (Nova, one server per call) under 120 calls
  per window (fleet's default EasyStack action budget);
- `huawei-ecs-stop-<N>`: stop `--ecs` Huawei ECSs (batch calls counted in servers) under 1,000
  servers per window (ECS's documented "1,000 ECSs per minute").

The simulator enforces the limit (a sliding window) and answers 429 over it. The contenders
(`bench/peer_clients.py`): on EasyStack `naive` (openstacksdk `stop_server` sent together with
`asyncio.gather`), `c7n-retry` (the same with Cloud Custodian's `get_retry`) and `sdk-rate-limit`
(openstacksdk's `rate_limit`); on ECS `c7n-chunks` and `c7n-chunks+retry` (Cloud Custodian's
Huawei pattern: 1,000-server batch stops one after the other, each waiting for its job); and
`fleet` on both (`fleet serve` given the stop through its REST API, as `bench/engine.py` runs it,
with the same budget). Within each round the contenders alternate, each round in another order.

Short windows: the window is `--window` seconds (3 by default) instead of 60, and every time is the
production one scaled by 60 s / window (20 by default): a stop's 20 s, fleet's 2 s poll, the
peers' retry delays and job polls. What is not scaled (listing, each call's round trip, fleet's
planning) weighs that much more than it would against real windows.

Lower bound (the same for every contender): the limit spreads the task's servers over windows (the
first window is free), then the last server needs a stop's time. Makespan: fleet's from the
operation's creation to its end (the service's clock, planning included); a peer's from its start
(listing included) to the later of its return and its last accepted stop call plus a stop's time.
Per run: ratio (makespan / bound), servers done (SHUTOFF at the end) of the total, the simulator's
429s, the action calls (429s included), all requests, and the contender's CPU seconds (the
bench process for a peer, `fleet serve` for fleet). Bar: fleet within 1.05 x the bound with every
server done on every task; the exit status is 1 otherwise.

JSON: `{"tasks": [{"task", "who", "round", "ratio", "done", "total", "throttled", "calls",
"requests", "makespan_s", "lower_bound_s", "cpu_s"}], "window_s", "scale", "load_average_before",
"load_average_after", "runtime_s", "bar_met"}`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine import _get, campaign
from bench.peer_clients import run_contender
from tests.e2e.procs import post_json, simulator_process

BAR = 1.05


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # the simulator's kind: "openstack" | "ecs"
    servers: int
    key: str  # the rate key of the action
    limit: int  # per window, in the key's unit
    unit: str
    peers: tuple[str, ...]

    def world(self, scale: float) -> str:
        """`servers` ACTIVE servers of one kind, untagged (every one a target)."""
        prefix = "es" if self.kind == "openstack" else self.kind
        rows = "".join(
            f'[[servers]]\nname = "{prefix}-{i:05d}"\nkind = "{self.kind}"\n'
            for i in range(self.servers)
        )
        return f"seed = 7\nspeed = {scale}\n[generate]\necs = 0\nbms = 0\nopenstack = 0\n{rows}"

    def limits(self, period: float) -> dict[str, Any]:
        return {self.key: {"limit": self.limit, "period": period, "unit": self.unit}}

    def endpoints(self, period: float) -> str:
        """The fleet endpoint (`bench.engine.campaign`'s lines), its budget the simulator's."""
        big = f"[{{ limit = 100000, period = {period} }}]"
        if self.kind == "openstack":
            budgets = f"{{ action = [{{ limit = {self.limit}, period = {period} }}], show = {big}, list = {big} }}"
            return f"es | openstack | {budgets}"
        action = f'{{ limit = {self.limit}, period = {period}, unit = "servers" }}'
        return f"ecs | huawei-ecs | {{ action = [{action}] }}"

    def lower_bound(self, period: float, stop_s: float) -> float:
        return (math.ceil(self.servers / self.limit) - 1) * period + stop_s


def tasks(es: int, ecs: int) -> list[Task]:
    return [
        Task(
            f"easystack-stop-{es}",
            "openstack",
            es,
            "openstack:action",
            120,
            "requests",
            ("naive", "c7n-retry", "sdk-rate-limit"),
        ),
        Task(
            f"huawei-ecs-stop-{ecs}",
            "ecs",
            ecs,
            "huawei-ecs:action",
            1000,
            "servers",
            ("c7n-chunks", "c7n-chunks+retry"),
        ),
    ]


def _row(task: Task, who: str, makespan: float, bound: float, **figures: Any) -> dict[str, Any]:
    return {
        "task": task.name,
        "who": who,
        "ratio": round(makespan / bound, 3),
        "total": task.servers,
        "makespan_s": round(makespan, 2),
        "lower_bound_s": round(bound, 2),
        **figures,
    }


def fleet_run(task: Task, period: float, scale: float) -> dict[str, Any]:
    stop_s = 20.0 / scale
    endpoint = "es" if task.kind == "openstack" else "ecs"
    r = campaign(
        task.world(scale),
        task.endpoints(period),
        task.limits(period),
        {"endpoints": [endpoint]},
        poll_interval=2.0 / scale,
        stop_seconds=stop_s,
    )
    print(f"peers: {task.name} fleet {r.state}, planned at {r.planned_s:.2f} s", file=sys.stderr)
    return _row(
        task,
        "fleet",
        r.seconds,
        task.lower_bound(period, stop_s),
        done=r.statuses.get("SHUTOFF", 0),
        throttled=r.throttled,
        calls=r.calls.get(task.key, 0),
        requests=sum(r.calls.values()),
        cpu_s=round(r.cpu_seconds, 2),
        state=r.state,
    )


def peer_run(task: Task, who: str, period: float, scale: float) -> dict[str, Any]:
    stop_s = 20.0 / scale
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "world.toml").write_text(task.world(scale))
        with simulator_process(tmp / "world.toml", tmp / "sim.log") as url:
            ep = _get(f"{url}/_sim/endpoints")
            post_json(f"{url}/_sim/limits", task.limits(period))
            cpu0, started = time.process_time(), time.time()
            failed = run_contender(task.name, who, ep, task.limit, period, scale)
            ended, cpu = time.time(), time.process_time() - cpu0
            requests = _get(f"{url}/_sim/requests")["requests"]
            accepted = [
                float(e["time"])
                for e in requests
                if e["rate_key"] == task.key and int(e["status"] or 0) < 400
            ]
            settled = max(accepted, default=started) + stop_s
            time.sleep(max(0.0, settled + 0.2 - time.time()))  # every accepted stop settles
            stats: dict[str, Any] = _get(f"{url}/_sim/stats")["keys"]
            servers = _get(f"{url}/_sim/servers?kind={task.kind}")["servers"]
    return _row(
        task,
        who,
        max(ended, settled) - started,
        task.lower_bound(period, stop_s),
        done=sum(s["status"] == "SHUTOFF" for s in servers),
        throttled=sum(int(v["throttled"]) for v in stats.values()),
        calls=int(stats.get(task.key, {}).get("calls", 0)),
        requests=len(requests),
        cpu_s=round(cpu, 2),
        failed_calls=failed,
    )


def bench(window: float, rounds: int, es: int, ecs: int, only: str | None = None) -> dict[str, Any]:
    scale = 60.0 / window
    out: dict[str, Any] = {"window_s": window, "scale": scale}
    out["load_average_before"] = round(os.getloadavg()[0], 2)
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    chosen = [t for t in tasks(es, ecs) if only is None or t.name.startswith(only)]
    for n in range(rounds):
        for task in chosen:
            who = [*task.peers, "fleet"]
            for name in who[n % len(who) :] + who[: n % len(who)]:
                if name == "fleet":
                    row = fleet_run(task, window, scale)
                else:
                    row = peer_run(task, name, window, scale)
                rows.append({"round": n + 1, **row})
                print(f"peers: {_line(rows[-1])}", file=sys.stderr)
    out["tasks"] = rows
    out["load_average_after"] = round(os.getloadavg()[0], 2)
    out["runtime_s"] = round(time.monotonic() - started, 1)
    fleet = [r for r in rows if r["who"] == "fleet"]
    out["bar_met"] = all(r["ratio"] <= BAR and r["done"] == r["total"] for r in fleet)
    return out


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['task']:22} {r['who']:17} {r['round']:>2} {r['ratio']:6.3f} "
        f"{r['makespan_s']:7.2f} {r['done']:>5}/{r['total']:<5} {r['throttled']:>6} "
        f"{r['calls']:>6} {r['requests']:>6} {r['cpu_s']:6.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--window", type=float, default=3.0, help="the limits' window (s)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every contender")
    parser.add_argument("--es", type=int, default=500, help="EasyStack servers to stop")
    parser.add_argument("--ecs", type=int, default=5000, help="Huawei ECSs to stop")
    parser.add_argument("--only", choices=["easystack", "huawei"], help="one task only")
    args = parser.parse_args(argv)
    for name in ("window", "rounds", "es", "ecs"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name}: must be > 0")
    out = bench(args.window, args.rounds, args.es, args.ecs, args.only)
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"{'task':22} {'who':17} {'r':>2} {'ratio':>6} {'secs':>7} {'done':>11} "
            f"{'429s':>6} {'calls':>6} {'reqs':>6} {'cpu_s':>6}"
        )
        for row in out["tasks"]:
            print(_line(row))
        rest = {k: v for k, v in out.items() if k != "tasks"}
        print(json.dumps(rest))
    return 0 if out["bar_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
