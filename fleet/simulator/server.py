"""Running the simulator: in-process for tests and benchmarks, or as `fleet simulate`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from fleet.simulator.app import build_app
from fleet.simulator.control import endpoints
from fleet.simulator.core import CTX, SimContext
from fleet.simulator.worldgen import WorldSpec, load_spec


@dataclass
class RunningSimulator:
    base_url: str
    port: int
    app: web.Application

    @property
    def ctx(self) -> SimContext:
        return self.app[CTX]

    @property
    def endpoints(self) -> dict[str, dict[str, str]]:
        return endpoints(self.ctx)

    def real_seconds(self) -> dict[str, float]:
        """Real (wall-clock) seconds each action takes to settle at this simulator's speed."""
        world = self.ctx.world
        return {
            action: simulated / world.clock.speed for action, simulated in world.durations.items()
        }


@contextlib.asynccontextmanager
async def start_simulator(
    spec: WorldSpec | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSimulator]:
    """Serve the simulator on `host:port` (0 = a free port) until the context exits."""
    app = build_app(spec)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    base = f"http://{host}:{bound}"
    app[CTX].base_url = base
    try:
        yield RunningSimulator(base_url=base, port=bound, app=app)
    finally:
        await runner.cleanup()


def banner(sim: RunningSimulator) -> str:
    ep = sim.endpoints
    os_, hw = ep["openstack"], ep["huawei"]
    counts: dict[str, int] = {}
    for s in sim.ctx.world.servers.values():
        counts[s.kind] = counts.get(s.kind, 0) + 1
    return f"""fleet simulator listening on {sim.base_url}
servers: {", ".join(f"{k}={v}" for k, v in sorted(counts.items()))}; speed x{sim.ctx.world.clock.speed}

Huawei Cloud (ECS v1, BMS v1, native Nova v2.1, IAM):
  endpoint   {hw["ecs_url"]}   (IAM, ECS and BMS)
  project_id {hw["project_id"]}   region {hw["region"]}
  AK/SK      {hw["ak"]} / {hw["sk"]}
  IAM user   {hw["username"]} / {hw["password"]} (domain {hw["domain_name"]})

OpenStack / EasyStack (Keystone v3 + Nova v2.1): a clouds.yaml entry:
clouds:
  fleet-sim:
    auth:
      auth_url: {os_["auth_url"]}
      username: {os_["username"]}
      password: {os_["password"]}
      project_name: {os_["project_name"]}
      user_domain_name: {os_["user_domain_name"]}
      project_domain_name: {os_["project_domain_name"]}
    region_name: {os_["region_name"]}
    identity_api_version: 3

Introspection: {sim.base_url}/_sim/endpoints, /_sim/requests, /_sim/stats, /_sim/servers
"""


async def _serve(spec: WorldSpec, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with start_simulator(spec, host=host, port=port) as sim:
        sys.stdout.write(banner(sim))
        sys.stdout.flush()
        await stop.wait()


def serve(*, host: str, port: int, world: str | None, seed: int | None, speed: float | None) -> int:
    """`fleet simulate`: serve until SIGINT/SIGTERM."""
    try:
        spec = load_spec(world, seed=seed, speed=speed)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"fleet simulate: bad world file: {exc}\n")
        return 2
    try:
        asyncio.run(_serve(spec, host, port))
    except OSError as exc:  # the port is taken, the address is not ours, ...
        sys.stderr.write(f"fleet simulate: cannot serve on {host}:{port}: {exc.strerror or exc}\n")
        return 2
    return 0
