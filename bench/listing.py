"""Huawei ECS listing benchmark (`python bench/listing.py [--json] [--servers N] [--rounds R]
[--bms B] [--page-size P]`).

Starts `fleet simulate` (its own process, loopback only) with a world of N ECSs (10,000 by
default) and B BMSs (0), then lists through `HuaweiEcsDriver` for three selectors without tag
criteria: every server (what planning lists), one status (`stopped`) and a name glob
(`ecs-prod-web-*`). Each selector is listed by the native Nova detail list (`list_native`, the
path before the ECS v1 list was used) and by the ECS v1 list (`list_v1`), alternating native and
v1 within every round (this machine's speed drifts), R rounds (5). Reported per selector and
path: the median and every run's seconds, the medians of the CPU seconds of this (client) process
and of the simulator's process (steadier than wall time on a loaded machine), the requests the
simulator logged for one listing and the servers found (both paths must agree). Bounded: every
listing has a 120 s timeout, and the simulator is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fleet.domain import Provider, Selector, ServerRef, ServerStatus  # noqa: E402
from fleet.drivers.config import AkSkCredentials, EndpointConfig, Secret  # noqa: E402
from fleet.drivers.http import new_session  # noqa: E402
from fleet.drivers.huawei.ecs import HuaweiEcsDriver  # noqa: E402
from fleet.logging import configure_logging  # noqa: E402
from tests.e2e.procs import cpu_seconds, get_json, simulator_with_pid  # noqa: E402

SELECTORS: dict[str, Selector] = {
    "all": Selector(),
    "status=stopped": Selector(statuses=frozenset({ServerStatus.STOPPED})),
    "name=ecs-prod-web-*": Selector(name_pattern="ecs-prod-web-*"),
}
PATHS = ("native", "v1")
TIMEOUT = 120.0


def _config(endpoints: dict[str, Any], page_size: int) -> EndpointConfig:
    hw = endpoints["huawei"]
    return EndpointConfig(
        name="ecs",
        provider=Provider.HUAWEI_ECS,
        credentials=AkSkCredentials(ak=Secret(hw["ak"]), sk=Secret(hw["sk"])),
        region=hw["region"],
        project_id=hw["project_id"],
        ecs_url=hw["ecs_url"],
        bms_url=hw["bms_url"],
        iam_url=hw["iam_url"],
        page_size=page_size,
        timeout=60.0,
    )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _clear_log(url: str) -> None:
    request = urllib.request.Request(f"{url}/_sim/requests", method="DELETE")
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def _requests(url: str) -> int:
    entries = get_json(f"{url}/_sim/requests")["requests"]
    return len(entries) if isinstance(entries, list) else 0


async def _time(
    listing: Callable[[Selector], AsyncIterator[ServerRef]], selector: Selector
) -> tuple[float, float, set[str]]:
    async def drain() -> set[str]:
        return {s.id async for s in listing(selector)}

    cpu, start = _cpu(), time.perf_counter()
    ids = await asyncio.wait_for(drain(), TIMEOUT)
    return time.perf_counter() - start, _cpu() - cpu, ids


async def _run(url: str, pid: int, rounds: int, page_size: int) -> dict[str, Any]:
    endpoints = get_json(f"{url}/_sim/endpoints")
    results: dict[str, Any] = {}
    async with new_session(8) as session:
        driver = HuaweiEcsDriver(_config(endpoints, page_size), session)
        listings = {"native": driver.list_native, "v1": driver.list_v1}
        for name, selector in SELECTORS.items():
            runs: dict[str, list[float]] = {p: [] for p in PATHS}
            cpu: dict[str, list[float]] = {p: [] for p in PATHS}
            sim_cpu: dict[str, list[float]] = {p: [] for p in PATHS}
            found: dict[str, set[str]] = {}
            calls: dict[str, int] = {}
            for r in range(rounds):
                order = PATHS if r % 2 == 0 else PATHS[::-1]  # alternate which goes first
                for path in order:
                    _clear_log(url)
                    sim_before = cpu_seconds([pid])
                    seconds, cpu_s, ids = await _time(listings[path], selector)
                    sim_cpu[path].append(round(cpu_seconds([pid]) - sim_before, 3))
                    calls[path] = _requests(url)
                    runs[path].append(round(seconds, 3))
                    cpu[path].append(round(cpu_s, 3))
                    found[path] = ids
            if found["native"] != found["v1"]:
                raise SystemExit(f"{name}: the two paths found different servers")
            results[name] = {
                path: {
                    "median_s": round(statistics.median(runs[path]), 3),
                    "runs_s": runs[path],
                    "client_cpu_s": round(statistics.median(cpu[path]), 3),
                    "simulator_cpu_s": round(statistics.median(sim_cpu[path]), 3),
                    "requests": calls[path],
                    "servers": len(found[path]),
                }
                for path in PATHS
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--bms", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()
    configure_logging("console", level="error")
    world = (
        f"seed = 7\nspeed = 1000.0\n[generate]\necs = {args.servers}\nbms = {args.bms}\n"
        "openstack = 0\n"
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "world.toml").write_text(world)
        with simulator_with_pid(tmp / "world.toml", tmp / "sim.log") as (url, pid):
            results = asyncio.run(_run(url, pid, args.rounds, args.page_size))
    settings = {k: getattr(args, k) for k in ("servers", "bms", "rounds", "page_size")}
    if args.json:
        print(json.dumps({"settings": settings, "selectors": results}))
        return
    print(f"{settings}")
    head = f"{'selector':22} {'path':7} {'median s':>9} {'cpu s':>7} {'sim cpu':>7} {'reqs':>5}"
    print(f"{head} {'found':>6}  runs")
    for name, paths in results.items():
        for path, r in paths.items():
            print(
                f"{name:22} {path:7} {r['median_s']:9.3f} {r['client_cpu_s']:7.3f} "
                f"{r['simulator_cpu_s']:7.3f} {r['requests']:5d} {r['servers']:6d}  {r['runs_s']}"
            )


if __name__ == "__main__":
    main()
