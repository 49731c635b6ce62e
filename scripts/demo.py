"""`make demo`: fleet's main job in one minute, through the REST API, against the simulator.

1. migrates a fresh SQLite database (`fleet db upgrade`) in a temporary directory;
2. starts `fleet serve` (the embedded simulator of all three dialects + the engine + the API);
3. runs the scenario through the REST API, with live progress bars:
   a. a dry-run plan of a reboot campaign, with its calls per rate key and its ETA;
   b. the reboot campaign itself, in waves (1, 10%, the rest), across ECS, BMS and EasyStack;
   c. a stop with an injected cloud fault and `max_errors`: the error budget stops it;
   d. a resize (ECS: stop, resize, start; EasyStack: resize, confirm);
   e. a scheduled policy (weekday evenings, Berlin time, dry run only) created through the API,
      previewed, and fired by hand (`POST /v1/policies/{name}/run`);
4. prints a final table, stops the service and removes the temporary directory.

It exits 0 when every step ended as expected and leaves nothing running. Environment variables
`FLEET_*` pass through to the service (e.g. `FLEET_SIMULATOR__SPEED=100` for a faster run).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from fleet.cli.client import Client, plan_text, table, watch
from fleet.cli.policies import preview_text, run_text

ROOT = Path(__file__).resolve().parent.parent
FLEET = [sys.executable, "-m", "fleet.cli"]
CONFIG = ["--config", str(ROOT / "config" / "demo.toml")]
ENDPOINTS = ["ecs-sim", "bms-sim", "easystack-sim"]


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(url_file: Path, proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        url = url_file.read_text().strip() if url_file.is_file() else ""
        if url:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):  # noqa: S310 (http, loopback)
                    return url
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.1)
    raise SystemExit(f"demo: the service did not start; its log:\n{log.read_text()[-3000:]}")


@contextmanager
def service(workdir: Path) -> Iterator[tuple[str, str, str]]:
    """`fleet db upgrade` + `fleet serve` on free loopback ports; stopped (SIGTERM) on exit."""
    sim_port = free_port()
    env: Mapping[str, str] = {
        **os.environ,
        "FLEET_DATABASE__URL": f"sqlite+aiosqlite:///{workdir / 'demo.db'}",
        "FLEET_SERVICE__PORT": "0",
        "FLEET_SIMULATOR__PORT": str(sim_port),
        "FLEET_LOGGING__FORMAT": "json",
        "FLEET_BOOTSTRAP_TOKEN_FILE": str(workdir / "admin.token"),
    }
    say("migrating a fresh SQLite database: fleet db upgrade")
    subprocess.run([*FLEET, "db", "upgrade", *CONFIG], cwd=ROOT, env=env, check=True)
    say("starting fleet serve: simulator (ECS, BMS, EasyStack) + engine + REST API")
    log, url_file = workdir / "service.log", workdir / "url"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*FLEET, "serve", *CONFIG, "--url-file", str(url_file)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = _wait_for(url_file, proc, log)
        print(f"service pid {proc.pid} at {url}; simulator at http://127.0.0.1:{sim_port}")
        yield url, (workdir / "admin.token").read_text().strip(), f"http://127.0.0.1:{sim_port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        print(f"service pid {proc.pid} stopped (exit {proc.returncode})")


async def create(client: Client, body: dict[str, object]) -> dict[str, object]:
    return await client.call("POST", "/v1/operations", body=body)


async def running_ids(client: Client, endpoint: str, n: int, **tags: str) -> list[str]:
    params = [("endpoint", endpoint), ("status", "running"), ("limit", "1000")]
    params += [("tag", f"{k}={v}") for k, v in tags.items()]
    page = await client.call("GET", "/v1/servers", params=params)
    items = page["items"]
    assert isinstance(items, list)
    ids = [s["id"] for s in items if s["tags"].get("fleet-exclude") != "true"]
    return ids[:n]


async def step_plan_and_reboot(client: Client) -> list[dict[str, object]]:
    campaign = {
        "action": "reboot",
        "params": {"type": "SOFT"},
        "targets": {"endpoints": ENDPOINTS, "tags_all": {"role": "web"}},
        "strategy": {"waves": [1, "10%", "100%"], "max_errors": "10%", "max_in_flight": 20},
        "reason": "demo: monthly reboot of the web tier",
    }
    say("1/5 dry run: what a reboot of every web server would do, and how long it would take")
    plan = await create(client, {**campaign, "dry_run": True})
    op, summary = plan["operation"], plan["plan"]
    assert isinstance(op, dict)
    print(plan_text(op, summary if isinstance(summary, dict) else None))
    say("2/5 the reboot campaign, in waves of 1, 10% and the rest, across all three dialects")
    made = await create(client, campaign)
    final = await watch(client, str(made["id"]), sys.stdout, sys.stderr)
    return [final]


async def step_fault(
    client: Client, sim_url: str, session: aiohttp.ClientSession
) -> dict[str, object]:
    say("3/5 stop 12 dev servers; 3 of them fail in the cloud; max_errors=2 stops the rest")
    ids = await running_ids(client, "ecs-sim", 12, env="dev")
    fault = {"kind": "job_fail", "server_ids": ids[:3], "error_code": "Ecs.0013",
             "reason": "demo: the hypervisor refused"}  # fmt: skip
    async with session.post(f"{sim_url}/_sim/faults", json=fault) as resp:
        resp.raise_for_status()
    print(f"injected job_fail on {len(ids[:3])} of {len(ids)} servers (Ecs.0013)")
    made = await create(
        client,
        {
            "action": "stop",
            "params": {"type": "SOFT"},
            "targets": {"endpoints": ["ecs-sim"], "ids": ids},
            "strategy": {"max_in_flight": 4, "max_errors": 2},
            "reason": "demo: error budget",
        },
    )
    return await watch(client, str(made["id"]), sys.stdout, sys.stderr)


async def step_resize(client: Client) -> list[dict[str, object]]:
    say("4/5 resize: ECS (stop, resize, start again) and EasyStack (resize, confirm)")
    finals = []
    for endpoint, flavor in (("ecs-sim", "c6.xlarge.2"), ("easystack-sim", "214")):
        ids = await running_ids(client, endpoint, 4, env="staging")
        made = await create(
            client,
            {
                "action": "resize",
                "params": {"flavor": flavor},
                "targets": {"endpoints": [endpoint], "ids": ids},
                "strategy": {"max_in_flight": 4},
                "reason": "demo: bigger staging servers",
            },
        )
        finals.append(await watch(client, str(made["id"]), sys.stdout, sys.stderr))
    return finals


POLICY: dict[str, object] = {
    "name": "web-evening-stop",
    "description": "demo: web servers off on weekday evenings (dry run only)",
    "cron": "0 20 * * mon-fri",
    "timezone": "Europe/Berlin",
    "action": "stop",
    "params": {"type": "SOFT"},
    "targets": {"endpoints": ENDPOINTS, "tags_all": {"role": "web"}},
    "dry_run_only": True,
}


async def step_policy(client: Client) -> list[str]:
    """Create a policy, preview it, run it now; what went other than promised, as lines."""
    say("5/5 a scheduled policy: weekday evenings in Berlin, dry run only; run now by hand")
    made = await client.call("POST", "/v1/policies", body=POLICY)
    name = str(made["id"])
    print(f"policy {name} created (cron {POLICY['cron']!r} {POLICY['timezone']})")
    preview = await client.call(
        "GET", f"/v1/policies/{name}/preview", params=[("n", "3"), ("servers", "0")]
    )
    print(preview_text(preview))
    run = await client.call("POST", f"/v1/policies/{name}/run")
    print(run_text(name, run))
    fire = run["fire"]
    assert isinstance(fire, dict)
    if fire["status"] != "fired" or not fire["operation_id"]:
        return [f"policy fire ended {fire['status']}: {fire['reason']}"]
    final = await watch(client, str(fire["operation_id"]), sys.stdout, sys.stderr)
    again = await client.call("POST", f"/v1/policies/{name}/run")
    same = again["fire"]["id"] == fire["id"]  # type: ignore[index]
    print(f"policy fire: {final['state']}; run again in the same minute: ", end="")
    print("the same fire, nothing new" if same and not again["created"] else "a new minute")
    problems = [] if final["state"] == "planned" else [f"policy's operation {final['state']}"]
    if same and again["created"]:
        problems.append("the same slot fired twice")
    return problems


def final_table(ops: list[dict[str, object]], endpoints: dict[str, object]) -> str:
    rows = []
    for op in ops:
        counts = op["counts"]
        assert isinstance(counts, dict)
        targets = op["targets"]
        assert isinstance(targets, dict)
        where = ",".join(targets.get("endpoints") or ["all"])
        rows.append(
            (
                op["action"],
                where,
                op["state"],
                counts["succeeded"],
                counts["failed"],
                counts["unknown"],
                counts["skipped"],
                counts["cancelled"],
            )
        )
    header = ("action", "endpoints", "state", "ok", "failed", "unknown", "skipped", "cancelled")
    keys = [
        (
            k["rate_key"],
            ", ".join(f"{b['limit']} {b['unit']}/{b['period']:g}s" for b in k["budgets"]),
            k["throttled"],
        )
        for e in endpoints["items"]  # type: ignore[attr-defined]
        for k in e["rate_keys"]
        if k["rate_key"].endswith(":action")
    ]
    return table(rows, header) + "\n\n" + table(keys, ("rate key", "budget", "throttled answers"))


def expected(ops: list[dict[str, object]], endpoints: dict[str, object]) -> list[str]:
    """What the scenario promises; each broken promise is a line."""
    reboot, stop, *resizes = ops
    problems = [
        f"{k['rate_key']}: {k['throttled']} throttled answers"
        for e in endpoints["items"]  # type: ignore[attr-defined]
        for k in e["rate_keys"]
        if k["throttled"]
    ]
    if reboot["state"] != "succeeded":
        problems.append(f"reboot ended {reboot['state']}")
    counts = stop["counts"]
    assert isinstance(counts, dict)
    if stop["state"] != "stopped" or counts["failed"] != 3:
        problems.append(f"stop ended {stop['state']} with {counts['failed']} failures")
    problems += [f"resize ended {r['state']}" for r in resizes if r["state"] != "succeeded"]
    return problems


async def scenario(url: str, token: str, sim_url: str) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        client = Client(url, token, session)
        ops = await step_plan_and_reboot(client)
        ops.append(await step_fault(client, sim_url, session))
        ops += await step_resize(client)
        policy_problems = await step_policy(client)
        endpoints = await client.call("GET", "/v1/endpoints")
    say("summary")
    print(final_table(ops, endpoints))
    problems = expected(ops, endpoints) + policy_problems
    for problem in problems:
        print(f"UNEXPECTED: {problem}")
    print("demo finished: " + ("everything as expected" if not problems else "with surprises"))
    return 1 if problems else 0


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="fleet-demo-") as tmp:
        with service(Path(tmp)) as (url, token, sim_url):
            code = asyncio.run(scenario(url, token, sim_url))
        if code:
            print(json.dumps({"service_log_tail": (Path(tmp) / "service.log").read_text()[-2000:]}))
    return code


if __name__ == "__main__":
    sys.exit(main())
