"""A client that goes away in the middle of an event stream is a normal end, not an error."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from fleet.api.app import create_app
from fleet.api.context import ApiConfig
from fleet.service import open_fleet
from fleet.tokens import Role, TokenStore
from tests.api.conftest import api_settings

PAUSED = {
    "action": "reboot",
    "targets": {"endpoints": ["easystack-sim"]},
    "strategy": {"waves": [1], "pause_after_wave": True},
}


@contextlib.asynccontextmanager
async def served(tmp_path: Path, sqlite_url: str) -> AsyncIterator[tuple[str, str]]:
    """The API served as `fleet serve` serves it (its runner), with an admin token."""
    async with open_fleet(api_settings(tmp_path, sqlite_url)) as fleet:
        app = create_app(fleet, config=ApiConfig(stream_interval=0.02, keepalive=0.05))
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            url = site.name
            _, token = await TokenStore(fleet.store.db).create(
                "admin-t", Role.ADMIN, fleet.operations.clock.now()
            )
            yield url, token
        finally:
            await runner.cleanup()


async def test_a_client_leaving_a_stream_logs_no_error(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        served(tmp_path, sqlite_url) as (url, token),
        aiohttp.ClientSession(url, headers={"Authorization": f"Bearer {token}"}) as session,
    ):
        async with session.post("/v1/operations", json=PAUSED) as created:
            assert created.status == 202, await created.text()
            op_id = (await created.json())["id"]
        with capture_logs() as logs:
            for _ in range(3):  # before the stream starts: request sent, connection reset
                await asyncio.to_thread(
                    _send_and_reset, url, token, f"/v1/operations/{op_id}/events"
                )
            for _ in range(3):  # in the middle of the stream
                resp = await session.get(f"/v1/operations/{op_id}/events")
                assert resp.status == 200
                assert (await resp.content.readline()).startswith(b"id: ")
                assert resp.connection is not None and resp.connection.transport is not None
                resp.connection.transport.abort()  # the client is gone, without a goodbye
                resp.close()
            await asyncio.sleep(0.5)  # the streams write (keep-alive comments) to nobody
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [(r.name, r.getMessage()) for r in bad]
    bad_events = [e for e in logs if e["log_level"] in ("error", "critical") or "exc_info" in e]
    assert not bad_events, bad_events
    left = [e for e in logs if e["event"] == "stream_client_left"]
    assert len(left) == 6 and all(e["log_level"] == "debug" for e in left), logs


def _send_and_reset(url: str, token: str, path: str) -> None:
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"
        sock.sendall(request.encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
