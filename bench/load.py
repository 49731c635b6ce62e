"""load: is the engine starved by API load? (`python bench/load.py [--json] [--clients N]`)

`fleet simulate` (its own process) holds 2,000 + `--spare` ECS servers; `fleet serve` (its own
process, SQLite) reboots the 2,000 with the action key's budget at `--rate` servers per second
(`--rate` x 10 servers per 10 s window, enforced by the simulator too), so that key is saturated for
the whole run. `--split` runs `fleet serve --role api` and `fleet serve --role engine` instead. Once the reboot is dispatching, for `--seconds`:

- `--clients` concurrent API clients send requests, each one after the other, as fast as they
  are answered: 35% `GET /v1/operations/{reboot}`, 20% `GET /v1/operations?limit=20`, 15%
  `GET /v1/operations/{reboot}/subjobs?limit=50`, 20% `GET /v1/endpoints`, 10% `GET /healthz`
  (no `GET /v1/servers`: it lists the cloud, and the simulator shares this machine's cores with
  the service, so it would measure the simulator);
- a probe creates a one-server operation on a spare server every `--probe-every` seconds (2),
  a dry run and a stop in turn, each one without waiting for the previous one.

Each one-server plan lists the endpoint's whole fleet (the plan reports the fleet's size): 2,200
servers in three pages.

Figures:
- `plan_p95_s`: the 95th percentile, over the probe's operations, of the seconds from creation to
  plan (the operation's own `created_at` and `planned_at`); one not planned when the run ends
  counts as planned at the end.
- `key_ratio`: the reboot's action key, servers the simulator received per second during the
  client phase over its ceiling, over whole cycles of the budget: a saturated key sends its
  window's budget in a burst as soon as the limiter lets it, so the rate is the servers sent from
  the first burst in the phase to the last one over the time between them. Fleet's limiter counts
  a call until a period after its answer, so even an idle service stays a little under 1 (about
  the answer's latency over the 10 s window; nothing with 60 s windows).
- Also: requests answered, their p95 latency, 5xx answers, operations not planned at the end.

Bar: `plan_p95_s` <= 2 and `key_ratio` >= 0.95 with 200 clients (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.engine import Service, _campaign_config, _cpu_seconds, service  # noqa: E402
from tests.api.live import _stop, _wait_ready  # noqa: E402
from tests.e2e.procs import get_json, post_json, simulator_process  # noqa: E402

KEY = "huawei-ecs:action"
FLEET = [sys.executable, "-m", "fleet.cli"]
PERIOD = 10  # the action key's window (s): its limit is --rate x PERIOD servers


def _world(reboot: int, spare: int) -> str:
    return f"seed = 7\nspeed = 20.0\n[generate]\necs = {reboot + spare}\nbms = 0\nopenstack = 0\n"


class Clients:
    """`n` clients sending mixed requests until `until` (monotonic)."""

    def __init__(self, svc: Service, reboot_id: str, spare: list[str], seed: int) -> None:
        self.svc, self.reboot_id, self.spare = svc, reboot_id, spare
        self.rng = random.Random(seed)
        self.latencies: list[float] = []
        self.errors_5xx = 0
        self.failed = 0
        self.singles: list[str] = []  # one-server operations created (real and dry runs)

    def _request(self) -> str:
        r, op = self.rng.random(), self.reboot_id
        if r < 0.35:
            return f"/v1/operations/{op}"
        if r < 0.55:
            return "/v1/operations?limit=20"
        if r < 0.70:
            return f"/v1/operations/{op}/subjobs?limit=50"
        if r < 0.90:
            return "/v1/endpoints"
        return "/healthz"

    async def _call(
        self, http: aiohttp.ClientSession, method: str, path: str, body: object = None
    ) -> dict[str, Any] | None:
        headers = {"Authorization": f"Bearer {self.svc.token}"}
        t0 = time.monotonic()
        try:
            async with http.request(method, self.svc.url + path, json=body, headers=headers) as r:
                data, status = await r.read(), r.status
        except (aiohttp.ClientError, TimeoutError):
            self.failed += 1
            return None
        self.latencies.append(time.monotonic() - t0)
        if status >= 500:
            self.errors_5xx += 1
        answer: dict[str, Any] | None = json.loads(data) if status < 300 else None
        return answer

    async def one(self, http: aiohttp.ClientSession, until: float) -> None:
        while time.monotonic() < until:
            await self._call(http, "GET", self._request())

    async def _single(self, http: aiohttp.ClientSession, dry_run: bool) -> None:
        target = {"endpoints": ["ecs"], "ids": [self.rng.choice(self.spare)]}
        body = {"action": "stop", "targets": target, "dry_run": dry_run}
        answer = await self._call(http, "POST", "/v1/operations", body)
        if answer is not None:
            self.singles.append(str(answer.get("operation", answer)["id"]))

    async def probe(self, http: aiohttp.ClientSession, until: float, every: float) -> None:
        tasks, dry_run = [], True
        while time.monotonic() < until:
            tasks.append(asyncio.create_task(self._single(http, dry_run)))
            dry_run = not dry_run
            await asyncio.sleep(every)
        await asyncio.gather(*tasks)

    async def run(self, n: int, seconds: float, every: float) -> None:
        until = time.monotonic() + seconds
        timeout = aiohttp.ClientTimeout(total=120)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            clients = [self.one(http, until) for _ in range(n)]
            await asyncio.gather(self.probe(http, until, every), *clients)


def _plan_seconds(svc: Service, ids: list[str], end: datetime) -> tuple[list[float], int]:
    out, unplanned = [], 0
    for op_id in ids:
        op = svc.call("GET", f"/v1/operations/{op_id}")
        created = datetime.fromisoformat(str(op["created_at"]))
        if op.get("planned_at"):
            out.append((datetime.fromisoformat(str(op["planned_at"])) - created).total_seconds())
        else:
            unplanned += 1
            out.append((end - created).total_seconds())
    return out, unplanned


def _slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of cumulative units over time."""
    if len(points) < 2:
        return 0.0
    xs, total, ys = [], 0, []
    for at, units in sorted(points):
        total += units
        xs.append(at)
        ys.append(total)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def _key_rate(sim: str, t0: float, t1: float) -> float:
    """Servers per second the key carried over whole cycles of its budget within [t0, t1].

    A saturated key sends its window's budget as soon as the window lets it, then waits: its
    calls come in bursts, one per cycle. The rate is the servers sent from the first burst that
    starts in [t0, t1] up to (not including) the last one, over the time between the two
    starts; with fewer than two bursts (calls spread evenly), the least-squares slope."""
    log = get_json(f"{sim}/_sim/requests?rate_key={KEY}", timeout=60)["requests"]
    assert isinstance(log, list)
    points = sorted(
        (float(e["time"]), len(e["server_ids"]) or 1)
        for e in log
        if t0 <= float(e["time"]) <= t1 and e.get("status") not in (429, None)
    )
    starts = [i for i, (at, _) in enumerate(points) if i and at - points[i - 1][0] >= PERIOD / 3]
    if len(starts) < 2:
        return _slope(points)
    first, last = starts[0], starts[-1]
    units = sum(n for _, n in points[first:last])
    return units / (points[last][0] - points[first][0])


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _wait_dispatching(svc: Service, op_id: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        op = svc.call("GET", f"/v1/operations/{op_id}")
        if op.get("planned_at") and sum(op["counts"].values()) > op["counts"].get("pending", 0):
            return
        time.sleep(0.2)
    raise RuntimeError("the reboot did not start dispatching within 120 s")


def _serve(config: Path, tmp: Path, env: dict[str, str], role: str) -> subprocess.Popen[bytes]:
    with (tmp / f"{role}.log").open("wb") as out:
        return subprocess.Popen(
            [
                *FLEET,
                "serve",
                "--config",
                str(config),
                "--role",
                role,
                "--url-file",
                str(tmp / f"{role}.url"),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def split_service(config: Path, tmp: Path, env: dict[str, str]) -> Iterator[tuple[Service, int]]:
    """`fleet serve --role engine` and `fleet serve --role api` on one database: the API's
    Service, and the engine's pid."""
    full_env = {**os.environ, **env, "FLEET_BOOTSTRAP_TOKEN_FILE": str(tmp / "admin.token")}
    upgrade = [*FLEET, "db", "upgrade", "--config", str(config)]
    subprocess.run(upgrade, check=True, capture_output=True, cwd=ROOT, env=full_env)
    engine = _serve(config, tmp, full_env, "engine")
    api: subprocess.Popen[bytes] | None = None
    try:
        _wait_ready(engine, tmp / "engine.url", tmp / "engine.log")
        api = _serve(config, tmp, full_env, "api")
        url = _wait_ready(api, tmp / "api.url", tmp / "api.log")
        time.sleep(1.0)
        yield Service(url, (tmp / "admin.token").read_text().strip(), api.pid), engine.pid
    finally:
        for proc in (api, engine):
            if proc is not None:
                _stop(proc)


@contextmanager
def services(
    config: Path, tmp: Path, env: dict[str, str], split: bool
) -> Iterator[tuple[Service, list[int]]]:
    if split:
        with split_service(config, tmp, env) as (svc, engine_pid):
            yield svc, [svc.pid, engine_pid]
    else:
        with service(config, tmp, env) as svc:
            yield svc, [svc.pid]


def run(
    clients: int, seconds: float, rate: int, reboot: int, spare: int, every: float, split: bool
) -> dict[str, Any]:
    endpoints = f'ecs | huawei-ecs | {{ action = [{{ limit = {rate * PERIOD}, period = {PERIOD}, unit = "servers" }}] }}'
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "world.toml").write_text(_world(reboot, spare))
        with simulator_process(tmp / "world.toml", tmp / "sim.log") as sim_url:
            sim = get_json(f"{sim_url}/_sim/endpoints")
            post_json(
                f"{sim_url}/_sim/limits",
                {KEY: {"limit": rate * PERIOD, "period": PERIOD, "unit": "servers"}},
            )
            servers = get_json(f"{sim_url}/_sim/servers?kind=ecs")["servers"]
            assert isinstance(servers, list)
            ids = sorted(str(s["id"]) for s in servers)
            big, small = ids[:reboot], ids[reboot:]
            db = f"sqlite+aiosqlite:///{tmp}/bench.db"
            _campaign_config(tmp / "c.toml", db, sim, endpoints, 0.5, 1.0)
            env = {"BENCH_AK": sim["huawei"]["ak"], "BENCH_SK": sim["huawei"]["sk"]}
            env["BENCH_OS_PASSWORD"] = sim["openstack"]["password"]
            with services(tmp / "c.toml", tmp, env, split) as (svc, pids):
                op = svc.call(
                    "POST",
                    "/v1/operations",
                    {"action": "reboot", "targets": {"endpoints": ["ecs"], "ids": big}},
                )
                _wait_dispatching(svc, str(op["id"]))
                load0, cpu0 = os.getloadavg()[0], [_cpu_seconds(p) for p in pids]
                c = Clients(svc, str(op["id"]), small, seed=clients)
                t0 = time.time()
                asyncio.run(c.run(clients, seconds, every))
                t1 = time.time()
                cpu = [round(_cpu_seconds(p) - c0, 1) for p, c0 in zip(pids, cpu0, strict=True)]
                end = datetime.now().astimezone()
                plans, unplanned = _plan_seconds(svc, c.singles, end)
                rate_seen = _key_rate(sim_url, t0, t1)
                stats = get_json(f"{sim_url}/_sim/stats")["keys"]
    throttled = sum(int(v["throttled"]) for v in stats.values())  # type: ignore[union-attr]
    return {
        "clients": clients,
        "plan_p95_s": round(_p95(plans), 2),
        "key_ratio": round(rate_seen / rate, 3),
        "probes": len(plans),
        "unplanned": unplanned,
        "requests": len(c.latencies),
        "request_p95_s": round(_p95(c.latencies), 3),
        "errors_5xx": c.errors_5xx,
        "failed": c.failed,
        "throttled": throttled,
        "role": "api+engine" if split else "all",
        "cpu_s": cpu,
        "seconds": seconds,
        "load_average": round(load0, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=20, help="the action key's servers per second")
    parser.add_argument("--reboot", type=int, default=2000)
    parser.add_argument("--spare", type=int, default=200)
    parser.add_argument("--probe-every", type=float, default=2.0)
    parser.add_argument(
        "--split",
        action="store_true",
        help="run `fleet serve --role api` and `fleet serve --role engine` (else --role all)",
    )
    args = parser.parse_args(argv)
    out = run(
        args.clients, args.seconds, args.rate, args.reboot, args.spare, args.probe_every, args.split
    )
    out["bar_met"] = out["plan_p95_s"] <= 2.0 and out["key_ratio"] >= 0.95
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>16}: {v}")
    return 0 if out["bar_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
