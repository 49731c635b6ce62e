"""What `fleet serve` checks before it starts (endpoints' secrets, policy files: one line, exit 2),
and `/readyz` reporting each endpoint's credential state against the simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.settings import load_settings
from tests.api.conftest import ROOT, serving
from tests.simulator_fixtures import Sim

FLEET = [sys.executable, "-m", "fleet.cli"]

ENDPOINT = """
[[endpoints]]
name = "prod-ecs"
provider = "huawei-ecs"
ecs_url = "http://127.0.0.1:9"
project_id = "0123456789abcdef0123456789abcdef"
"""


def _serve(tmp_path: Path, config: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "fleet.toml"
    path.write_text(config, encoding="utf-8")
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLEET_")},
        "FLEET_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}",
        "FLEET_SERVICE__PORT": "0",
        **env,
    }
    return subprocess.run(
        [*FLEET, "serve", "--config", str(path)],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize(
    ("credentials", "named"),
    [
        ('{ ak_env = "FLEET_TEST_NO_AK", sk_env = "FLEET_TEST_SK" }', "FLEET_TEST_NO_AK"),
        (
            '{ ak_env = "FLEET_TEST_AK", sk_file = "/nonexistent/fleet-sk" }',
            "/nonexistent/fleet-sk",
        ),
    ],
)
def test_a_missing_secret_stops_serve_with_one_line(
    tmp_path: Path, credentials: str, named: str
) -> None:
    config = ENDPOINT + f"credentials = {credentials}\n"
    proc = _serve(
        tmp_path,
        config,
        FLEET_POLICIES__ENABLED="false",
        FLEET_TEST_AK="the-ak",
        FLEET_TEST_SK="the-sk",
    )
    line = _one_line(proc)
    assert "endpoints[prod-ecs].credentials." in line and named in line, line
    assert "the-ak" not in line and "the-sk" not in line


def test_a_bad_policy_file_stops_serve_with_one_line(tmp_path: Path) -> None:
    policies = tmp_path / "policies-bad.toml"
    policies.write_text(
        '[[policies]]\nname = "nightly"\ncron = "0 20 * *"\naction = "stop"\n'
        'targets = { endpoints = ["ecs-sim"] }\n',
        encoding="utf-8",
    )
    config = f'[policies]\nfiles = ["{policies}"]\n'
    line = _one_line(_serve(tmp_path, config))
    assert str(policies) in line and "policies[0].cron" in line, line


def _config(sim: Sim) -> str:
    hw, os_ = sim.endpoints["huawei"], sim.endpoints["openstack"]
    easystack = f"""
provider = "openstack"
flavour = "easystack"
auth_url = "{os_["auth_url"]}"
project_name = "{os_["project_name"]}"
region = "{os_["region_name"]}"
"""
    creds = (
        f'username = "{os_["username"]}", user_domain_name = "{os_["user_domain_name"]}", '
        f'project_domain_name = "{os_["project_domain_name"]}"'
    )
    return f"""
[[endpoints]]
name = "hw-wrong-sk"
provider = "huawei-ecs"
ecs_url = "{hw["ecs_url"]}"
project_id = "{hw["project_id"]}"
region = "{hw["region"]}"
credentials = {{ ak_env = "FLEET_TEST_AK", sk_env = "FLEET_TEST_WRONG_SK" }}
[[endpoints]]
name = "es-wrong-password"
{easystack}
credentials = {{ {creds}, password_env = "FLEET_TEST_WRONG_PASSWORD" }}
[[endpoints]]
name = "es-good"
{easystack}
credentials = {{ {creds}, password_env = "FLEET_TEST_PASSWORD" }}
"""


async def test_readyz_names_the_endpoints_whose_credentials_fail(
    tmp_path: Path, sqlite_url: str, simulator: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_TEST_AK", simulator.endpoints["huawei"]["ak"])
    monkeypatch.setenv("FLEET_TEST_WRONG_SK", "not-the-secret-key")
    monkeypatch.setenv("FLEET_TEST_WRONG_PASSWORD", "not-the-password")
    monkeypatch.setenv("FLEET_TEST_PASSWORD", simulator.endpoints["openstack"]["password"])
    path = tmp_path / "fleet.toml"
    path.write_text(_config(simulator), encoding="utf-8")
    env = {"FLEET_DATABASE__URL": sqlite_url, "FLEET_POLICIES__ENABLED": "false"}
    settings = load_settings([ROOT / "config" / "default.toml", path], env)
    async with serving(settings) as api:
        ready = await api.get("/readyz")
        assert ready.status == 503, ready.body
        assert ready.body["status"] == "not ready"
        assert ready.body["checks"]["database"] == "ok"
        assert ready.body["checks"]["credentials"] == "failed: es-wrong-password, hw-wrong-sk"
        creds = ready.body["credentials"]
        assert isinstance(creds, dict)
        assert creds["es-good"]["state"] == "ok"
        for name in ("hw-wrong-sk", "es-wrong-password"):
            assert creds[name]["state"] == "failed", creds
            assert "AuthError" in creds[name]["reason"] and "401" in creds[name]["reason"]
        text = str(ready.body)
        for secret in ("not-the-secret-key", "not-the-password"):
            assert secret not in text
        for secret in (simulator.endpoints["openstack"]["password"],):
            assert secret not in text
        # a probe within the cache time asks no cloud again
        tokens = len(simulator.requests(path_prefix="/identity/v3/auth/tokens"))
        signed = len(
            simulator.requests(path_prefix=f"/v2.1/{simulator.endpoints['huawei']['project_id']}")
        )
        again = await api.get("/readyz")
        assert again.status == 503 and again.body["credentials"] == creds
        assert len(simulator.requests(path_prefix="/identity/v3/auth/tokens")) == tokens
        assert (
            len(
                simulator.requests(
                    path_prefix=f"/v2.1/{simulator.endpoints['huawei']['project_id']}"
                )
            )
            == signed
        )
