"""What the API may take at once: event streams per token (429 past the cap) and requests handled
at once (the others wait; a dry run waiting for its plan holds no slot)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from fleet.api.context import ApiConfig
from fleet.settings import SettingsError, load_settings
from tests.api.conftest import ROOT, Api, api_settings, serving

PAUSED = {
    "action": "reboot",
    "targets": {"endpoints": ["easystack-sim"]},
    "strategy": {"waves": [1], "pause_after_wave": True},
}


@contextlib.asynccontextmanager
async def api_with(tmp_path: Path, sqlite_url: str, **config: int) -> AsyncIterator[Api]:
    settings = api_settings(tmp_path, sqlite_url)
    async with serving(settings, ApiConfig(stream_interval=0.02, **config)) as api:  # type: ignore[arg-type]
        yield api


@contextlib.asynccontextmanager
async def stream(api: Api, op_id: str, role: str) -> AsyncIterator[aiohttp.ClientResponse]:
    """An event stream of `op_id`, open (its first event read) until the block ends."""
    resp = await api.client.get(f"/v1/operations/{op_id}/events", headers=api.auth(role))
    try:
        if resp.status == 200:
            assert (await resp.content.readline()).startswith(b"id: ")
        yield resp
    finally:
        resp.close()


async def test_streams_past_the_cap_of_a_token_are_429_with_a_clear_message(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with api_with(tmp_path, sqlite_url, max_streams_per_token=2) as api:
        made = await api.post("/v1/operations", PAUSED)
        op_id = str(made.body["id"])
        await api.wait_state(op_id, "paused")
        async with stream(api, op_id, "viewer") as one, stream(api, op_id, "viewer") as two:
            assert one.status == two.status == 200
            async with stream(api, op_id, "viewer") as third:
                assert third.status == 429
                assert third.content_type == "application/problem+json"
                assert third.headers["Retry-After"] == "5"
                detail = (await third.json())["detail"]
                assert "this token has 2 open, the limit is 2" in detail
                assert "max_streams_per_token" in detail
            async with stream(api, op_id, "operator") as other:  # another token has its own
                assert other.status == 200
        # Closed streams are given back (each notices its client left within a stream_interval).
        deadline = time.monotonic() + 10
        while True:
            async with stream(api, op_id, "viewer") as again:
                if again.status == 200:
                    break
                assert time.monotonic() < deadline, "closed streams were not given back"
            await asyncio.sleep(0.05)


async def test_requests_past_max_requests_wait_their_turn(tmp_path: Path, sqlite_url: str) -> None:
    async with api_with(tmp_path, sqlite_url, max_requests=1) as api:
        replies = await asyncio.gather(*(api.get("/v1/endpoints") for _ in range(20)))
        assert [r.status for r in replies] == [200] * 20


async def test_a_dry_run_waiting_for_its_plan_holds_no_request_slot(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with api_with(tmp_path, sqlite_url, max_requests=1) as api:
        async with api.client.session.post(
            f"{api.fleet.simulator_url}/_sim/faults",
            json={"kind": "latency", "match": "*", "ms": 1500, "count": 0},
        ) as resp:
            assert resp.status == 201
        body = {"action": "stop", "targets": {"endpoints": ["easystack-sim"]}, "dry_run": True}
        dry_run = asyncio.create_task(api.post("/v1/operations", body))
        await asyncio.sleep(0.3)  # the dry run waits for its plan (the listing takes 1.5 s)
        started = time.monotonic()
        reply = await api.get("/v1/endpoints")
        took = time.monotonic() - started
        assert reply.status == 200
        assert not dry_run.done()
        assert took < 1.0, f"a request waited {took:.2f} s behind a dry run's wait"
        planned = await dry_run
        assert planned.status == 200 and planned.body["plan"] is not None


@pytest.mark.parametrize("key", ["max_requests", "max_streams_per_token"])
def test_the_limits_must_be_positive(key: str) -> None:
    environ = {f"FLEET_SERVICE__{key.upper()}": "0"}
    with pytest.raises(SettingsError, match=f"service.{key}"):
        load_settings([ROOT / "config" / "default.toml"], environ)
