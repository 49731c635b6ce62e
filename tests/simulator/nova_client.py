"""A minimal raw-HTTP client for the simulator's two Nova mounts (tests only).

It deliberately speaks the wire format by hand (no fleet driver), so the simulator's tests check
the simulator against the digest and not against another piece of fleet.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from fleet.simulator.core import HUAWEI, KEYSTONE
from tests.simulator_fixtures import Sim, SimFactory


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Nova:
    """Calls one surface (`huawei` or `openstack`) with a valid token and a microversion."""

    sim: Sim
    http: aiohttp.ClientSession
    surface: str
    version: str | None = "2.26"
    token: str = field(default="")

    def __post_init__(self) -> None:
        if not self.token:
            if self.surface == "huawei":
                scope, project = HUAWEI, self.sim.world.huawei_project_id
            else:
                scope, project = KEYSTONE, self.sim.world.openstack_project_id
            self.token = self.sim.ctx.issue_token(scope, project).value

    def url(self, path: str) -> str:
        if self.surface == "huawei":
            return f"{self.sim.base_url}/v2.1/{self.sim.world.huawei_project_id}{path}"
        return f"{self.sim.base_url}/compute/v2.1{path}"

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: dict[str, str] | list[tuple[str, str]] | None = None,
        version: str | None = "",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = {"X-Auth-Token": self.token, **(headers or {})}
        chosen = self.version if version == "" else version
        if chosen is not None:
            sent["X-OpenStack-Nova-API-Version"] = chosen
        async with self.http.request(
            method, self.url(path), json=json, params=params, headers=sent
        ) as resp:
            raw = await resp.read()
            body: Any = None
            if raw and resp.content_type == "application/json":
                body = await resp.json()
            return Reply(resp.status, body, dict(resp.headers))

    async def server(self, server_id: str) -> dict[str, Any]:
        reply = await self.call("GET", f"/servers/{server_id}")
        assert reply.status == 200, reply.body
        return dict(reply.body["server"])

    async def action(self, server_id: str, body: object) -> Reply:
        return await self.call("POST", f"/servers/{server_id}/action", json=body)


@contextlib.asynccontextmanager
async def slow_sim(factory: SimFactory, **counts: int) -> AsyncIterator[Sim]:
    """A simulator whose clock only moves when a test advances it (speed x0.001)."""
    async with factory(speed=0.001, **counts) as sim:
        yield sim
