"""`fleet serve`'s app factory (the Fleet in a cleanup context), bootstrap tokens, `fleet tokens`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fleet.api.context import FLEET
from fleet.api.server import service_app
from fleet.cli import main
from tests.api.conftest import api_settings


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


async def _whoami(settings_path: Path, token_file: Path, db_url: str) -> tuple[int, str]:
    settings = api_settings(settings_path, db_url)
    app = service_app(settings, bootstrap_token_file=str(token_file))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        token = _read(token_file).strip()
        headers = {"Authorization": f"Bearer {token}"}
        body = {"action": "start", "targets": {"endpoints": ["bms-sim"]}, "dry_run": True}
        async with client.post("/v1/operations", json=body, headers=headers) as resp:
            data = await resp.json()
            return resp.status, str(data["operation"]["created_by"])


async def test_bootstrap_token_is_written_once_and_kept(tmp_path: Path, sqlite_url: str) -> None:
    token_file = tmp_path / "secrets" / "admin.token"
    status, who = await _whoami(tmp_path, token_file, sqlite_url)
    assert (status, who) == (200, "bootstrap")
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    first = _read(token_file)
    assert (await _whoami(tmp_path, token_file, sqlite_url))[0] == 200
    assert _read(token_file) == first  # a valid token is kept

    token_file.write_text("fleet_garbage_token\n", encoding="utf-8")
    assert (await _whoami(tmp_path, token_file, sqlite_url))[0] == 200
    replaced = _read(token_file)
    assert replaced != first and replaced.startswith("fleet_")


async def test_the_service_app_closes_everything_it_opened(tmp_path: Path, sqlite_url: str) -> None:
    app = service_app(api_settings(tmp_path, sqlite_url))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fleet = app[FLEET]
    assert fleet.runtime.running
    await server.close()
    assert not fleet.runtime.running


def test_tokens_command_prints_the_token_once(
    tmp_path: Path,
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLEET_DATABASE__URL", sqlite_url)
    # the command configures logging for the process; keep pytest's captured stderr out of it
    monkeypatch.setattr("fleet.cli.commands.configure_logging", lambda *_a, **_k: None)
    assert main(["tokens", "create", "ops-bot", "--role", "operator"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("fleet_") and len(out.split("_")[2]) == 64
    assert main(["tokens", "create", "ops-bot", "--role", "operator"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["tokens", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ops-bot\toperator\tactive" in listing and out not in listing
    assert main(["tokens", "revoke", "ops-bot"]) == 0
    main(["tokens", "list"])
    assert "ops-bot\toperator\trevoked" in capsys.readouterr().out
