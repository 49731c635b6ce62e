"""The API over a real Fleet (embedded simulator, drivers, engine) on SQLite or PostgreSQL.

`api` serves `create_app(fleet)` on a loopback port with a token per role; `api_pg` is the same
on both databases (the `db_url` fixture). The simulated world is small and runs 200x faster than
real time, so operations finish in about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as json_lib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fleet.api.app import create_app
from fleet.api.context import ApiConfig
from fleet.service import Fleet, open_fleet
from fleet.settings import Settings, load_settings
from fleet.tokens import Role, TokenStore

ROOT = Path(__file__).resolve().parents[2]
# The EasyStack endpoint of the API suite serves the tag API (2.26+, as upstream Nova), which fleet
# finds in its version document; a test that needs one without it passes `NO_TAG_API`.
WORLD = """
seed = 11
[generate]
ecs = 16
bms = 8
openstack = 16
"""
NO_TAG_API = "tag_api = false\n" + WORLD  # the EasyStack advertises 2.25: no tags at all
ROLES = ("viewer", "operator", "admin")
DONE = {
    "succeeded",
    "completed_with_failures",
    "stopped",
    "cancelled",
    "refused",
    "planned",
    "rejected",
    "expired",
}


def api_settings(tmp_path: Path, db_url: str, world_text: str = WORLD, **extra: str) -> Settings:
    world = tmp_path / "world.toml"
    world.write_text(world_text, encoding="utf-8")
    environ = {
        "FLEET_DATABASE__URL": db_url,
        "FLEET_SIMULATOR__SPEED": "200",
        "FLEET_SIMULATOR__WORLD": f'"{world}"',
        "FLEET_ENGINE__POLL_INTERVAL": "0.2",
        "FLEET_ENGINE__IDLE_INTERVAL": "0.05",
        **extra,
    }
    return load_settings([ROOT / "config" / "default.toml", ROOT / "config" / "demo.toml"], environ)


@dataclass
class Reply:
    status: int
    body: dict[str, object]
    headers: Mapping[str, str]
    content_type: str


@dataclass
class Api:
    fleet: Fleet
    client: TestClient[object, object]
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    async def call(
        self,
        method: str,
        path: str,
        *,
        role: str | None = "admin",
        json: object | None = None,
        data: bytes | None = None,
        params: object | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        all_headers = {**self.auth(role), **(headers or {})}
        async with self.client.request(
            method, path, json=json, data=data, params=params, headers=all_headers
        ) as resp:
            text = await resp.text()
            try:
                body = json_lib.loads(text) if text else {}
            except ValueError:
                body = {"text": text}
            return Reply(resp.status, body, dict(resp.headers), resp.content_type)

    async def get(self, path: str, role: str | None = "viewer", **kw: object) -> Reply:
        return await self.call("GET", path, role=role, **kw)  # type: ignore[arg-type]

    async def post(
        self, path: str, json: object = None, role: str | None = "operator", **kw: object
    ) -> Reply:
        return await self.call("POST", path, role=role, json=json, **kw)  # type: ignore[arg-type]

    async def wait(self, operation_id: str, seconds: float = 60.0) -> dict[str, object]:
        """The operation once it is over (polling GET, bounded)."""
        async with asyncio.timeout(seconds):
            while True:
                reply = await self.get(f"/v1/operations/{operation_id}")
                if reply.body.get("state") in DONE:
                    return reply.body
                await asyncio.sleep(0.1)

    async def wait_state(self, operation_id: str, state: str, seconds: float = 30.0) -> None:
        async with asyncio.timeout(seconds):
            while True:
                reply = await self.get(f"/v1/operations/{operation_id}")
                if reply.body.get("state") == state:
                    return
                await asyncio.sleep(0.05)

    async def servers(self, endpoint: str, **filters: str) -> list[dict[str, object]]:
        params = [("endpoint", endpoint), ("limit", "1000"), *filters.items()]
        reply = await self.get("/v1/servers", params=params)
        assert reply.status == 200, reply.body
        items = reply.body["items"]
        assert isinstance(items, list)
        return [s for s in items if s["tags"].get("fleet-exclude") != "true"]

    async def operation_count(self) -> int:
        page = await self.fleet.operations.list(None, 1000)
        return len(page.items)


@contextlib.asynccontextmanager
async def serving(settings: Settings, config: ApiConfig | None = None) -> AsyncIterator[Api]:
    """A Fleet, the API over it on a loopback port, and one token per role."""
    async with open_fleet(settings) as fleet:
        app = create_app(fleet, config=config or ApiConfig(stream_interval=0.05))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            api = Api(fleet, client)
            store = TokenStore(fleet.store.db)
            for role in ROLES:
                _, token = await store.create(f"{role}-t", Role(role), fleet.operations.clock.now())
                api.tokens[role] = token
            yield api


@pytest.fixture
async def api(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Api]:
    async with serving(api_settings(tmp_path, sqlite_url)) as running:
        yield running


@pytest.fixture
async def api_db(tmp_path: Path, db_url: str) -> AsyncIterator[Api]:
    """The same, once on SQLite and once on PostgreSQL."""
    async with serving(api_settings(tmp_path, db_url)) as running:
        yield running
