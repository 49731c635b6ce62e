"""Connections to the API as `fleet serve` runs it: a client that goes away in the middle of an
event stream is a normal end, not an error; idle and half-sent connections are closed in time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from fleet.api.app import create_app
from fleet.api.context import ApiConfig
from fleet.api.server import service_runner
from fleet.service import open_fleet
from fleet.tokens import Role, TokenStore
from tests.api.conftest import api_settings

PAUSED = {
    "action": "reboot",
    "targets": {"endpoints": ["easystack-sim"]},
    "strategy": {"waves": [1], "pause_after_wave": True},
}


@contextlib.asynccontextmanager
async def served(tmp_path: Path, sqlite_url: str, **extra: str) -> AsyncIterator[tuple[str, str]]:
    """The API served as `fleet serve` serves it (its runner), with an admin token."""
    settings = api_settings(tmp_path, sqlite_url, **extra)
    async with open_fleet(settings) as fleet:
        app = create_app(fleet, config=ApiConfig(stream_interval=0.02, keepalive=0.05))
        runner = service_runner(app, settings.service)
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
    host, port = _address(url)
    with socket.create_connection((host, port), timeout=5) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"
        sock.sendall(request.encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST


def _address(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    return host, int(port)


def _closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes `sock` (reading and dropping what it sends)."""
    started = time.monotonic()
    sock.settimeout(limit)
    while sock.recv(4096):
        pass
    return time.monotonic() - started


TIMEOUTS = {"FLEET_SERVICE__KEEPALIVE_TIMEOUT": "1.5", "FLEET_SERVICE__HEADER_TIMEOUT": "0.4"}


async def test_half_sent_and_idle_connections_are_closed(tmp_path: Path, sqlite_url: str) -> None:
    async with served(tmp_path, sqlite_url, **TIMEOUTS) as (url, _):
        address = _address(url)

        def half_sent() -> float:
            with socket.create_connection(address, timeout=5) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and nothing more
                return _closed_after(sock, 10)

        def silent() -> float:
            with socket.create_connection(address, timeout=5) as sock:
                return _closed_after(sock, 10)

        def idle_after_an_answer() -> tuple[bytes, float]:
            with socket.create_connection(address, timeout=5) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = sock.recv(4096)
                return answer, _closed_after(sock, 10)

        def slow_but_in_time() -> bytes:
            with socket.create_connection(address, timeout=5) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\n")
                time.sleep(0.2)
                sock.sendall(b"Host: x\r\nConnection: close\r\n\r\n")
                return sock.recv(4096)

        waited = await asyncio.gather(
            asyncio.to_thread(half_sent),
            asyncio.to_thread(silent),
            asyncio.to_thread(idle_after_an_answer),
            asyncio.to_thread(slow_but_in_time),
        )
    half, quiet, (answer, idle), slow = waited
    assert 0.3 <= half < 1.2, half  # the header timeout, well before the keep-alive one
    assert 0.3 <= quiet < 1.2, quiet
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert 1.2 <= idle < 3.5, idle  # the keep-alive timeout
    assert slow.startswith(b"HTTP/1.1 200"), slow


async def test_a_later_request_has_its_own_header_deadline(tmp_path: Path, sqlite_url: str) -> None:
    async with served(tmp_path, sqlite_url, **TIMEOUTS) as (url, _):
        address = _address(url)

        def second_half_sent() -> tuple[bytes, float]:
            with socket.create_connection(address, timeout=5) as sock:
                time.sleep(0.2)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = sock.recv(4096)
                time.sleep(0.6)  # idle (within keep-alive), longer than the header timeout
                sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # then half a second request
                return answer, _closed_after(sock, 10)

        answer, waited = await asyncio.to_thread(second_half_sent)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert 0.3 <= waited < 1.2, waited
