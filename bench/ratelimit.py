"""Saturate several rate keys at once against the simulator enforcing the same limits.

    python bench/ratelimit.py [--json] [--period 5] [--windows 6] [--latency-ms 30]
                              [--margin 0.1] [--hold answer|send] [--no-warm-up]

The simulator runs in-process on a free loopback port with short windows (by default 50 per 5 s),
0-30 ms of injected latency on every call, and enforces the limits with sliding windows at
receive time. Real driver calls (`fleet.drivers`, the product's `fleet.engine.gate.LimiterGate`) go
through one `jobs.ratelimit.RateLimiter` configured with the same budgets, one key per
(endpoint, API class), with more callers than a window admits so every key stays saturated:

- `huawei-bms:action`  BMS v1 batch reboot, one server per call, 50 requests per period;
- `huawei-bms:jobs`    BMS job polls, 100 requests per period;
- `huawei-ecs:action`  ECS v1 batch reboot of 20 servers per call, 200 servers per period
                       (the limiter also holds a 30 requests per period budget on that key);
- `openstack:action`   Nova per-server reboot, 50 requests per period.

`--hold answer` (default) is the product's wiring (`fleet.engine.gate.LimiterGate`): each call counted
until a period after its answer, which the drivers' transport reports to the gate; `--hold send`
counts from the send plus the margin, for comparison.
Tokens are fetched before the run unless `--no-warm-up`.

Per key we report the achieved rate (least-squares slope of cumulative units over the
simulator's receive times, the same estimator for every shape of traffic) over the ceiling
(limit / period), and the simulator's count of calls it refused for their rate. The bar:
`min_ratio >= 0.95` and `total_throttled == 0`; the exit status is 1 when it is not met.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import aiohttp
from limiters_compare import steady_rate

from fleet.domain import Action, ActionParams, Provider
from fleet.drivers.base import Driver, Submission
from fleet.drivers.config import EndpointConfig, PasswordCredentials, Secret
from fleet.drivers.errors import DriverError
from fleet.drivers.registry import create_driver
from fleet.engine.gate import LimiterGate
from fleet.logging import configure_logging
from fleet.simulator.server import RunningSimulator, start_simulator
from fleet.simulator.worldgen import WorldSpec
from jobs.clock import SystemClock
from jobs.ratelimit import DEFAULT_MARGIN, Budget, RateLimiter, Unit

BAR = 0.95
WORLD = {"ecs": 400, "bms": 100, "openstack": 200}
ECS_BATCH = 20  # servers per ECS call: the engine fills batches to the headroom, a divisor of it
SPEED = 200.0  # simulated seconds per real second: a reboot (30 s) settles in 0.15 s


@dataclass(frozen=True)
class KeyPlan:
    """One saturated key: the simulator's rate key, ours, and the budgets both enforce."""

    sim_key: str
    endpoint: str
    api_class: str
    limit: int
    unit: Unit
    workers: int
    extra: tuple[tuple[int, Unit], ...] = ()  # further budgets of ours only: (limit, unit)

    @property
    def key(self) -> str:
        return f"{self.endpoint}:{self.api_class}"


PLANS = (
    KeyPlan("huawei-bms:action", "bms-sim", "action", 50, Unit.REQUESTS, workers=60),
    KeyPlan("huawei-bms:jobs", "bms-sim", "jobs", 100, Unit.REQUESTS, workers=110),
    KeyPlan(
        "huawei-ecs:action", "ecs-sim", "action", 200, Unit.SERVERS, 40, ((30, Unit.REQUESTS),)
    ),
    KeyPlan("openstack:action", "os-sim", "action", 50, Unit.REQUESTS, workers=60),
)


@dataclass
class Tally:
    """What the callers of one key saw: calls answered, and driver errors by kind."""

    calls: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def failed(self, exc: DriverError) -> None:
        self.errors[exc.kind.value] = self.errors.get(exc.kind.value, 0) + 1


class SendGate(LimiterGate):
    """For comparison only: each call counted from its send plus the margin (the product's gate,
    `LimiterGate`, counts it until a period after its answer)."""

    async def before(self, api_class: str, servers: int) -> None:
        await self._limiter.acquire(self.key(api_class), servers=max(1, servers))

    def after(self, api_class: str, servers: int) -> None:
        return None


def endpoint_configs(sim: RunningSimulator) -> dict[str, EndpointConfig]:
    hw, os_ = sim.endpoints["huawei"], sim.endpoints["openstack"]
    huawei = PasswordCredentials(
        username=hw["username"], password=Secret(hw["password"]), user_domain_name=hw["domain_name"]
    )
    nova = PasswordCredentials(
        username=os_["username"],
        password=Secret(os_["password"]),
        user_domain_name=os_["user_domain_name"],
        project_domain_name=os_["project_domain_name"],
    )

    def huawei_endpoint(name: str, provider: Provider) -> EndpointConfig:
        return EndpointConfig(
            name,
            provider,
            huawei,
            region=hw["region"],
            project_id=hw["project_id"],
            iam_url=hw["iam_url"],
            ecs_url=hw["ecs_url"],
            bms_url=hw["bms_url"],
            connection_limit=200,
        )

    return {
        "bms-sim": huawei_endpoint("bms-sim", Provider.HUAWEI_BMS),
        "ecs-sim": huawei_endpoint("ecs-sim", Provider.HUAWEI_ECS),
        "os-sim": EndpointConfig(
            "os-sim",
            Provider.OPENSTACK,
            nova,
            auth_url=os_["auth_url"],
            project_name=os_["project_name"],
            region=os_["region_name"],
            connection_limit=200,
        ),
    }


async def prepare_simulator(
    control: aiohttp.ClientSession, base: str, period: float, latency_ms: float
) -> dict[str, list[str]]:
    """Set the limits and the latency; make every server ACTIVE; return the ids per kind."""
    limits = {p.sim_key: {"limit": p.limit, "period": period, "unit": p.unit.value} for p in PLANS}
    async with control.post(f"{base}/_sim/limits", json=limits) as response:
        response.raise_for_status()
    fault = {"kind": "latency", "match": "*", "count": 0, "ms": 0, "jitter_ms": latency_ms}
    async with control.post(f"{base}/_sim/faults", json=fault) as response:
        response.raise_for_status()
    async with control.get(f"{base}/_sim/servers") as response:
        servers = (await response.json())["servers"]
    ids: dict[str, list[str]] = {kind: [] for kind in WORLD}
    for server in servers:
        if server["status"] != "ACTIVE":
            url = f"{base}/_sim/servers/{server['id']}"
            async with control.patch(url, json={"status": "ACTIVE"}) as response:
                response.raise_for_status()
        ids[server["kind"]].append(server["id"])
    async with control.delete(f"{base}/_sim/requests") as response:
        response.raise_for_status()
    return ids


Call = Callable[[], Awaitable[None]]


def callers(drivers: dict[str, Driver], ids: dict[str, list[str]]) -> dict[str, Call]:
    """One coroutine factory per key: a single driver call of the right shape."""
    bms, ecs, nova = (itertools.cycle(ids[k]) for k in ("bms", "ecs", "openstack"))
    submissions: list[Submission] = []
    have_job = asyncio.Event()
    rng = random.Random(7)
    reboot = ActionParams()

    async def bms_action() -> None:
        submissions.append(await drivers["bms-sim"].submit(Action.REBOOT, [next(bms)], reboot))
        have_job.set()

    async def bms_jobs() -> None:
        await have_job.wait()
        await drivers["bms-sim"].poll(submissions[rng.randrange(len(submissions))])

    async def ecs_action() -> None:
        batch = _take(ecs, ECS_BATCH)
        await drivers["ecs-sim"].submit(Action.REBOOT, batch, reboot)

    async def os_action() -> None:
        await drivers["os-sim"].submit(Action.REBOOT, [next(nova)], reboot)

    return {
        "huawei-bms:action": bms_action,
        "huawei-bms:jobs": bms_jobs,
        "huawei-ecs:action": ecs_action,
        "openstack:action": os_action,
    }


def _take(cycle: Iterator[str], n: int) -> list[str]:
    return [next(cycle) for _ in range(n)]


async def saturate(calls: dict[str, Call], tallies: dict[str, Tally], seconds: float) -> None:
    """Run every key's callers for `seconds`, then let calls already granted finish."""
    stop = asyncio.Event()

    async def worker(sim_key: str) -> None:
        tally = tallies[sim_key]
        while not stop.is_set():
            try:
                await calls[sim_key]()
                tally.calls += 1
            except DriverError as exc:
                tally.failed(exc)

    tasks = [
        asyncio.create_task(worker(plan.sim_key)) for plan in PLANS for _ in range(plan.workers)
    ]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.sleep(0.5)  # calls in flight complete; the rest still wait in the limiter
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def measure(
    control: aiohttp.ClientSession, base: str, period: float, tallies: dict[str, Tally]
) -> dict[str, object]:
    async with control.get(f"{base}/_sim/stats") as response:
        stats = (await response.json())["keys"]
    keys = []
    for plan in PLANS:
        async with control.get(f"{base}/_sim/requests", params={"rate_key": plan.sim_key}) as r:
            entries = [e for e in (await r.json())["requests"] if e["status"] != 429]
        units = [len(e["server_ids"]) if plan.unit is Unit.SERVERS else 1 for e in entries]
        achieved = steady_rate([float(e["time"]) for e in entries], units)
        ceiling = plan.limit / period
        stat = stats.get(plan.sim_key, {})
        keys.append(
            {
                "key": plan.sim_key,
                "ceiling_per_s": round(ceiling, 3),
                "achieved_per_s": round(achieved, 3),
                "ratio": round(achieved / ceiling, 4),
                "throttled": int(stat.get("throttled", 0)),
                "unit": plan.unit.value,
                "limit": plan.limit,
                "period": period,
                "calls": int(stat.get("calls", 0)),
                "max_in_window": int(stat.get("max_in_window", 0)),
                "client_calls": tallies[plan.sim_key].calls,
                "client_errors": dict(tallies[plan.sim_key].errors),
            }
        )
    min_ratio = min(float(str(k["ratio"])) for k in keys)
    total = sum(int(str(k["throttled"])) for k in keys)
    return {"keys": keys, "min_ratio": min_ratio, "total_throttled": total}


async def authenticate(drivers: dict[str, Driver], ids: dict[str, list[str]]) -> None:
    """One read per endpoint (keys without a budget here), so tokens are cached before the run.

    Without it the first call of each endpoint fetches its token between `acquire` and the send,
    which delays the whole first burst (see `--no-warm-up`).
    """
    kinds = {"bms-sim": "bms", "ecs-sim": "ecs", "os-sim": "openstack"}
    for name, driver in drivers.items():
        await driver.get_server(ids[kinds[name]][0])


def configured_limiter(period: float, margin: float) -> RateLimiter:
    limiter = RateLimiter(SystemClock(), margin=margin)
    for plan in PLANS:
        extra = [Budget(limit, period, unit) for limit, unit in plan.extra]
        limiter.configure(plan.key, [Budget(plan.limit, period, plan.unit), *extra])
    return limiter


async def drive(
    sim: RunningSimulator,
    limiter: RateLimiter,
    ids: dict[str, list[str]],
    tallies: dict[str, Tally],
    *,
    seconds: float,
    hold: str,
    warm_up: bool,
) -> None:
    """Build the three drivers on their own sessions, behind the chosen gate, and saturate."""
    sessions = {
        name: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
        for name in ("bms-sim", "ecs-sim", "os-sim")
    }
    try:
        drivers: dict[str, Driver] = {}
        for name, config in endpoint_configs(sim).items():
            gate = LimiterGate(name, limiter) if hold == "answer" else SendGate(name, limiter)
            drivers[name] = create_driver(config, sessions[name], gate)
        if warm_up:
            await authenticate(drivers, ids)
            async with sessions["os-sim"].delete(f"{sim.base_url}/_sim/requests") as response:
                response.raise_for_status()
        await saturate(callers(drivers, ids), tallies, seconds)
    finally:
        for session in sessions.values():
            await session.close()


async def run(
    period: float, windows: int, latency_ms: float, margin: float, *, hold: str, warm_up: bool
) -> dict[str, object]:
    limiter = configured_limiter(period, margin)
    tallies = {plan.sim_key: Tally() for plan in PLANS}
    spec = WorldSpec(seed=7, speed=SPEED, counts=dict(WORLD))
    async with start_simulator(spec) as sim, aiohttp.ClientSession() as control:
        ids = await prepare_simulator(control, sim.base_url, period, latency_ms)
        seconds = windows * period
        await drive(sim, limiter, ids, tallies, seconds=seconds, hold=hold, warm_up=warm_up)
        result = await measure(control, sim.base_url, period, tallies)
    result["settings"] = {
        "period": period,
        "windows": windows,
        "latency_ms": [0, latency_ms],
        "margin": margin,
        "hold": hold,
        "warm_up": warm_up,
    }
    result["bar_met"] = (
        float(str(result["min_ratio"])) >= BAR and int(str(result["total_throttled"])) == 0
    )
    return result


def report(result: dict[str, object]) -> str:
    settings = result["settings"]
    assert isinstance(settings, dict)
    lines = [
        f"{settings['windows']} windows of {settings['period']:g} s, latency 0-"
        f"{settings['latency_ms'][1]:g} ms, margin {settings['margin']:g} s, "
        f"calls counted until a period after their {settings['hold']}",
        f"{'key':20} {'ceiling/s':>10} {'achieved/s':>11} {'ratio':>7} {'throttled':>10} "
        f"{'max in window':>14}",
    ]
    keys = result["keys"]
    assert isinstance(keys, list)
    for k in keys:
        peak = f"{k['max_in_window']}/{k['limit']}"
        lines.append(
            f"{k['key']:20} {k['ceiling_per_s']:>10} {k['achieved_per_s']:>11} "
            f"{k['ratio']:>7} {k['throttled']:>10} {peak:>14}"
        )
    verdict = "met" if result["bar_met"] else "NOT met"
    lines.append(
        f"min_ratio {result['min_ratio']}, total_throttled {result['total_throttled']}: "
        f"bar (min_ratio >= {BAR}, no throttling) {verdict}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--period", type=float, default=5.0, help="window of every limit (s)")
    parser.add_argument("--windows", type=int, default=6, help="how many windows to run")
    parser.add_argument("--latency-ms", type=float, default=30.0, help="injected latency, max")
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN, help="limiter margin (s)")
    parser.add_argument(
        "--hold",
        choices=("answer", "send"),
        default="answer",
        help="count each call until a period after its answer (default) or after its send",
    )
    parser.add_argument(
        "--no-warm-up", action="store_true", help="do not authenticate before the run"
    )
    args = parser.parse_args(argv)
    configure_logging("console", level="error")
    settings = (args.period, args.windows, args.latency_ms, args.margin)
    result = asyncio.run(run(*settings, hold=args.hold, warm_up=not args.no_warm_up))
    print(json.dumps(result) if args.json else report(result))
    return 0 if result["bar_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
