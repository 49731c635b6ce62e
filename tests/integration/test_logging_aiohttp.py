"""aiohttp's own log records (server errors, access lines) come out as fleet's JSON lines."""

import logging

import aiohttp
import pytest
import structlog
from aiohttp import web

from fleet.logging import configure_logging
from tests.unit.test_logging import json_lines


async def test_aiohttp_server_and_access_records_arejson_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def fails(_request: web.Request) -> web.Response:
        raise RuntimeError("handler broke")

    configure_logging("json", "info")
    access = logging.getLogger("aiohttp.access")
    access.setLevel(logging.INFO)  # aiohttp's access lines are info: let them through here
    app = web.Application()
    app.router.add_get("/fails", fails)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://127.0.0.1:{port}/fails", headers={"Authorization": "Bearer s3cr3t"}
            ) as reply,
        ):
            assert reply.status == 500
    finally:
        await runner.cleanup()
        access.setLevel(logging.NOTSET)
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert "s3cr3t" not in err
    lines = json_lines(err)
    by_logger = {line["logger"]: line for line in lines}
    assert set(by_logger) == {"aiohttp.server", "aiohttp.access"}, lines
    assert by_logger["aiohttp.server"]["level"] == "error"
    assert "RuntimeError: handler broke" in str(by_logger["aiohttp.server"]["exception"])
    assert "GET /fails" in str(by_logger["aiohttp.access"]["event"])
