"""Pytest fixtures that run the cloud simulator in-process on a free loopback port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import pytest

from fleet.simulator.core import SimContext
from fleet.simulator.faults import parse_rule
from fleet.simulator.limits import Limit
from fleet.simulator.server import RunningSimulator, start_simulator
from fleet.simulator.world import World
from fleet.simulator.worldgen import WorldSpec

# A small world that is quick to build; simulated time runs 50x so transitions settle in well
# under a second (a stop takes 20 simulated seconds).
SMALL = {"ecs": 20, "bms": 10, "openstack": 20}


@dataclass
class Sim:
    running: RunningSimulator

    @property
    def base_url(self) -> str:
        return self.running.base_url

    @property
    def endpoints(self) -> dict[str, dict[str, str]]:
        return self.running.endpoints

    @property
    def ctx(self) -> SimContext:
        return self.running.ctx

    @property
    def world(self) -> World:
        return self.ctx.world

    def requests(
        self,
        *,
        rate_key: str | None = None,
        dialect: str | None = None,
        path_prefix: str | None = None,
    ) -> list[dict[str, object]]:
        """The request log (without /_sim calls), optionally filtered."""
        return [
            e
            for e in self.ctx.log.entries
            if e["dialect"] != "sim"
            and (rate_key is None or e["rate_key"] == rate_key)
            and (dialect is None or e["dialect"] == dialect)
            and (path_prefix is None or str(e["path"]).startswith(path_prefix))
        ]

    def set_limit(
        self, key: str, limit: int | None, period: float = 60.0, unit: str = "requests"
    ) -> None:
        self.ctx.limits.set(key, None if limit is None else Limit(limit, period, unit))

    def fault(self, **rule: object) -> None:
        parsed = parse_rule(dict(rule))
        if parsed.kind == "job_fail":
            for sid in parsed.server_ids:
                self.world.failing[sid] = (parsed.error_code, parsed.reason)
        else:
            self.ctx.faults.add(parsed)

    def advance(self, seconds: float) -> None:
        """Move simulated time on and settle transitions."""
        self.world.clock.advance(seconds)
        self.world.settle()

    def servers(self, kind: str) -> list[str]:
        return [s.id for s in self.world.visible(kind)]


SimFactory = Callable[..., AbstractAsyncContextManager[Sim]]


@pytest.fixture
def simulator_factory() -> SimFactory:
    """`async with simulator_factory(ecs=5, speed=100) as sim:` for a world of your own."""

    @contextlib.asynccontextmanager
    async def make(
        *, seed: int = 1, speed: float = 50.0, spec: WorldSpec | None = None, **counts: int
    ) -> AsyncIterator[Sim]:
        if spec is None:
            spec = WorldSpec(
                seed=seed, speed=speed, counts={**SMALL, **counts} if counts else dict(SMALL)
            )
        async with start_simulator(spec) as running:
            yield Sim(running)

    return make


@pytest.fixture
async def simulator(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    """A small simulated world: 20 ECS, 10 BMS, 20 OpenStack servers, time x50."""
    async with simulator_factory() as sim:
        yield sim
