"""The worker name of `fleet serve`: the flag, else `engine.worker`, else the host name and the API
port (stable across restarts, distinct between replicas on one host)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from fleet.cli.entry import main
from fleet.service import engine_config, serve_worker
from fleet.settings import Settings, SettingsError, load_settings

HOST = socket.gethostname()


def _settings(**environ: str) -> Settings:
    return load_settings([], environ=environ)


def test_the_default_is_the_host_name_and_the_api_port() -> None:
    assert serve_worker(_settings()) == f"{HOST}:8080"
    assert serve_worker(_settings(FLEET_SERVICE__PORT="9001")) == f"{HOST}:9001"


def test_the_default_is_the_same_on_every_start() -> None:
    settings = _settings(FLEET_SERVICE__PORT="9001")
    names = {serve_worker(settings) for _ in range(3)}
    assert len(names) == 1
    assert engine_config(settings, serve_worker(settings)).worker == f"{HOST}:9001"


def test_replicas_on_one_host_get_distinct_names() -> None:
    a = serve_worker(_settings(FLEET_SERVICE__PORT="9001"))
    b = serve_worker(_settings(FLEET_SERVICE__PORT="9002"))
    assert a != b


def test_the_flag_wins_over_the_config_which_wins_over_the_default() -> None:
    configured = _settings(FLEET_ENGINE__WORKER="api-1")
    assert configured.engine.worker == "api-1"
    assert serve_worker(configured) == "api-1"
    assert serve_worker(configured, "api-2") == "api-2"
    assert engine_config(configured, None).worker == "api-1"  # also `fleet worker`


def test_an_ephemeral_port_gives_no_stable_name() -> None:
    """`port = 0`: the port is chosen when the API binds, and differs on every start."""
    settings = _settings(FLEET_SERVICE__PORT="0")
    assert serve_worker(settings) is None
    assert engine_config(settings, None).worker.startswith(f"{HOST}-")


@pytest.mark.parametrize("bad", ["", "two words", "-dash-first", "a/b", "x" * 201])
def test_a_bad_configured_name_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(SettingsError, match=r"^engine\.worker: "):
        _settings(FLEET_ENGINE__WORKER=f'"{bad}"')


def test_a_bad_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--worker", "two words"])
    assert exit_.value.code == 2
    assert "argument --worker: 'two words' is not a worker name" in capsys.readouterr().err
