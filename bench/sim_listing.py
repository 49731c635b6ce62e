"""Listing a large simulated fleet page by page: Nova (limit/marker) and ECS v1 (offset pages).

Starts the simulator in-process on a free loopback port with `--n` ECS servers and `--n` OpenStack
servers, then lists every server through the EasyStack Nova surface (`GET /servers/detail`,
`limit=1000`, following the `next` marker) and through `GET /v1/{project_id}/cloudservers/detail`
(`limit=1000`, `offset` = page number), alternating the two for `--rounds` rounds. Reports the
seconds of each listing, the pages and the servers seen (every server must be seen once).

    python bench/sim_listing.py [--json] [--n 100000] [--rounds 2] [--busy 0.1]

`--busy` puts that share of the servers into a transition (a stop) before listing, so settling has
work to do while the pages are read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet.simulator.core import HUAWEI, KEYSTONE
from fleet.simulator.server import RunningSimulator, start_simulator
from fleet.simulator.world import ECS, OPENSTACK, STOPPED
from fleet.simulator.worldgen import WorldSpec

PAGE = 1000


async def _get(http: aiohttp.ClientSession, url: str, **kw: Any) -> dict[str, Any]:
    async with http.get(url, **kw) as resp:
        if resp.status != 200:
            raise SystemExit(f"GET {url}: {resp.status} {await resp.text()}")
        body: dict[str, Any] = await resp.json()
        return body


async def list_nova(sim: RunningSimulator, http: aiohttp.ClientSession) -> tuple[int, int]:
    """Every OpenStack server through Nova's marker paging: (pages, distinct servers)."""
    world = sim.ctx.world
    token = sim.ctx.issue_token(KEYSTONE, world.openstack_project_id).value
    headers = {"X-Auth-Token": token, "X-OpenStack-Nova-API-Version": "2.60"}
    url = f"{sim.base_url}/compute/v2.1/servers/detail?limit={PAGE}"
    seen: set[str] = set()
    pages = 0
    while url:
        body = await _get(http, url, headers=headers)
        pages += 1
        seen.update(s["id"] for s in body["servers"])
        nxt = [link["href"] for link in body.get("servers_links", []) if link["rel"] == "next"]
        url = nxt[0] if nxt else ""
    return pages, len(seen)


async def list_ecs(sim: RunningSimulator, http: aiohttp.ClientSession) -> tuple[int, int]:
    """Every ECS through the v1 detail listing's page numbers: (pages, distinct servers)."""
    world = sim.ctx.world
    token = sim.ctx.issue_token(HUAWEI, world.huawei_project_id).value
    url = f"{sim.base_url}/v1/{world.huawei_project_id}/cloudservers/detail"
    seen: set[str] = set()
    page = 1
    while True:
        params = {"limit": str(PAGE), "offset": str(page)}
        body = await _get(http, url, headers={"X-Auth-Token": token}, params=params)
        seen.update(s["id"] for s in body["servers"])
        if page * PAGE >= body["count"]:
            return page, len(seen)
        page += 1


def _make_busy(sim: RunningSimulator, share: float) -> int:
    """Start a long stop on `share` of the servers (they stay in transition during the run)."""
    world = sim.ctx.world
    world.durations["stop"] = 1e9
    step = max(1, round(1 / share)) if share > 0 else 0
    busy = 0
    for i, server in enumerate(list(world.servers.values())):
        if step and i % step == 0:
            world.begin(server, "stop", interim=("ACTIVE", "powering-off"), end=STOPPED)
            busy += 1
    return busy


async def run(n: int, rounds: int, busy_share: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    spec = WorldSpec(counts={ECS: n, OPENSTACK: n, "bms": 0})
    async with start_simulator(spec) as sim, aiohttp.ClientSession() as http:
        built = time.perf_counter() - t0
        busy = _make_busy(sim, busy_share)
        times: dict[str, list[float]] = {"nova": [], "ecs_v1": []}
        pages: dict[str, int] = {}
        for _ in range(rounds):
            for name, lister in (("nova", list_nova), ("ecs_v1", list_ecs)):
                start = time.perf_counter()
                count, seen = await lister(sim, http)
                times[name].append(round(time.perf_counter() - start, 3))
                if seen != n:
                    raise SystemExit(f"{name}: saw {seen} servers of {n}")
                pages[name] = count
    return {
        "n": n,
        "page": PAGE,
        "rounds": rounds,
        "busy": busy,
        "world_build_s": round(built, 2),
        "listings": [
            {
                "listing": name,
                "pages": pages[name],
                "seconds": runs,
                "median_s": round(statistics.median(runs), 3),
                "ms_per_page": round(1000 * statistics.median(runs) / pages[name], 2),
            }
            for name, runs in times.items()
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--busy", type=float, default=0.1)
    args = parser.parse_args()
    result = asyncio.run(run(args.n, args.rounds, args.busy))
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.n} servers per listing, pages of {PAGE}, {result['busy']} in transition")
    for row in result["listings"]:
        print(
            f"{row['listing']:8} {row['pages']:4} pages  median {row['median_s']:7.2f} s"
            f"  ({row['ms_per_page']:.1f} ms/page)  runs {row['seconds']}"
        )


if __name__ == "__main__":
    main()
