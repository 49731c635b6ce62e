"""`fleet serve --role api` and `fleet serve --role engine` on one database: the API process
creates operations and serves them, the engine process plans and runs them; the engine's HTTP
listener serves only health, readiness and metrics.

Real processes: `fleet simulate` plays the cloud; both services read one SQLite file.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.e2e.procs import (
    free_port,
    get_json,
    migrated_token,
    sim_endpoints,
    sim_secrets,
    simulator_process,
    start_serve,
    wait_listening,
)

WORLD = """
seed = 9
speed = 50.0
[generate]
ecs = 12
bms = 0
openstack = 0
"""


def _config(path: Path, db_url: str, sim: Mapping[str, Any]) -> None:
    head = f"""
[database]
url = "{db_url}"
[engine]
poll_interval = 0.2
idle_interval = 0.1
drain_grace = 1.0
[logging]
format = "json"
[policies]
enabled = false
"""
    path.write_text(head + sim_endpoints(sim, {"ecs": ""}))


def _call(
    url: str, token: str, method: str = "GET", body: object = None
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # loopback only
            data = resp.read()
            return resp.status, json.loads(data) if resp.headers.get_content_type().endswith(
                "json"
            ) else {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_an_api_process_and_an_engine_process_run_operations_together(tmp_path: Path) -> None:
    (tmp_path / "world.toml").write_text(WORLD)
    with simulator_process(tmp_path / "world.toml", tmp_path / "sim.log") as sim_url:
        sim = get_json(f"{sim_url}/_sim/endpoints")
        config = tmp_path / "fleet.toml"
        _config(config, f"sqlite+aiosqlite:///{tmp_path}/fleet.db", sim)
        env = sim_secrets(sim)
        token = migrated_token(config, env, "ops", "operator")
        ports = {"engine": free_port(), "api": free_port()}
        procs = {}
        try:
            for role, port in ports.items():
                log = tmp_path / f"{role}.log"
                procs[role] = start_serve(
                    config, {**env, "FLEET_SERVICE__PORT": str(port)}, log, "--role", role
                )
                wait_listening(procs[role], port, log)
            api = f"http://127.0.0.1:{ports['api']}"
            engine = f"http://127.0.0.1:{ports['engine']}"
            status, ready = _call(f"{api}/readyz", token)
            assert status == 200 and ready["checks"]["engine"] == "elsewhere (role api)"
            status, ready = _call(f"{engine}/readyz", token)
            assert status == 200 and ready["checks"]["engine"] == "running"
            assert _call(f"{engine}/v1/operations", token)[0] == 404  # the API is elsewhere
            assert _call(f"{engine}/metrics", token)[0] == 200
            body = {"action": "stop", "targets": {"endpoints": ["ecs"]}}
            status, op = _call(f"{api}/v1/operations", token, "POST", body)
            assert status == 202, op
            deadline = time.monotonic() + 60
            while op["finished_at"] is None:
                assert time.monotonic() < deadline, op
                time.sleep(0.2)
                op = _call(f"{api}/v1/operations/{op['id']}", token)[1]
            assert op["state"] == "succeeded"
            assert op["counts"]["succeeded"] + op["counts"]["skipped"] == 12
            dry = {**body, "action": "start", "dry_run": True}
            status, answer = _call(f"{api}/v1/operations", token, "POST", dry)
            assert status == 200 and answer["plan"]["targets"] == 12  # planned by the engine
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(timeout=30)
