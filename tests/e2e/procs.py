"""Helpers to run fleet's real processes (simulator, worker) from tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FLEET = [sys.executable, "-m", "fleet.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, timeout: float = 10.0) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # loopback only
        data: dict[str, object] = json.loads(resp.read())
        return data


def sim_secrets(sim: Mapping[str, Any]) -> dict[str, str]:
    """The simulator's secrets (from its `/_sim/endpoints`) under the environment variables that
    `sim_endpoints` names: a service started with them reads its endpoints' credentials."""
    return {
        "SIM_AK": sim["huawei"]["ak"],
        "SIM_SK": sim["huawei"]["sk"],
        "SIM_OS_PASSWORD": sim["openstack"]["password"],
    }


_HUAWEI = {"ecs": "huawei-ecs", "bms": "huawei-bms"}


def sim_endpoints(sim: Mapping[str, Any], keys: Mapping[str, str]) -> str:
    """`[[endpoints]]` tables on `fleet simulate` (`sim`: its `/_sim/endpoints`), one per key of
    `keys` in its order: `ecs` (huawei-ecs), `bms` (huawei-bms) or `es` (openstack, EasyStack),
    each with the TOML lines of its value added (`budgets = {...}`, say; "" for none). The
    credentials are read from the environment that `sim_secrets` gives."""
    return "".join(_endpoint(sim, name, more) for name, more in keys.items())


def _endpoint(sim: Mapping[str, Any], name: str, more: str) -> str:
    hw, os_ = sim["huawei"], sim["openstack"]
    more = more.strip() + "\n" if more.strip() else ""
    if name in _HUAWEI:
        bms = f'bms_url = "{hw["bms_url"]}"\n' if name == "bms" else ""  # ECS's is not used
        return f"""
[[endpoints]]
name = "{name}"
provider = "{_HUAWEI[name]}"
ecs_url = "{hw["ecs_url"]}"
{bms}iam_url = "{hw["iam_url"]}"
project_id = "{hw["project_id"]}"
region = "{hw["region"]}"
credentials = {{ ak_env = "SIM_AK", sk_env = "SIM_SK" }}
{more}"""
    return f"""
[[endpoints]]
name = "{name}"
provider = "openstack"
flavour = "easystack"
auth_url = "{os_["auth_url"]}"
project_name = "{os_["project_name"]}"
region = "{os_["region_name"]}"
{more}[endpoints.credentials]
username = "{os_["username"]}"
password_env = "SIM_OS_PASSWORD"
user_domain_name = "{os_["user_domain_name"]}"
project_domain_name = "{os_["project_domain_name"]}"
"""


def fleet_run(args: Sequence[str], env: Mapping[str, str]) -> str:
    """`fleet ARGS...` to its end: its output, or RuntimeError with everything it wrote."""
    done = subprocess.run(
        [*FLEET, *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"fleet {' '.join(args)}: {done.stdout!r} {done.stderr!r}")
    return done.stdout.decode()


def migrated_token(config: Path, env: Mapping[str, str], name: str, role: str) -> str:
    """`fleet db upgrade`, then `fleet tokens create NAME --role ROLE`: the token, as a deployment
    starts (docs/deploy.md)."""
    fleet_run(["db", "upgrade", "--config", str(config)], env)
    out = fleet_run(["tokens", "create", name, "--role", role, "--config", str(config)], env)
    return out.strip().splitlines()[-1]


def post_json(url: str, body: object) -> dict[str, object]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        data: dict[str, object] = json.loads(resp.read())
        return data


@contextmanager
def simulator_process(world: Path, log: Path) -> Iterator[str]:
    """`fleet simulate` in its own process (it outlives the workers we kill); yields its URL."""
    with simulator_with_pid(world, log, start_seconds=30) as (url, _):
        yield url


@contextmanager
def simulator_with_pid(
    world: Path, log: Path, *, start_seconds: float = 60
) -> Iterator[tuple[str, int]]:
    """`fleet simulate` in its own process: its URL and pid (for its CPU time, say)."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*FLEET, "simulate", "--port", str(port), "--world", str(world)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_seconds
        while True:
            try:
                get_json(f"{url}/_sim/endpoints", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"simulator did not start: {log.read_text()}") from None
                time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_worker(
    config: Path, name: str, env: Mapping[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*FLEET, "worker", "--config", str(config), "--name", name],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )


def kill9(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def start_serve(
    config: Path, env: Mapping[str, str], log: Path, *args: str
) -> subprocess.Popen[bytes]:
    """`fleet serve --config CONFIG ARGS...`, its output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [*FLEET, "serve", "--config", str(config), *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )


def wait_listening(
    proc: subprocess.Popen[bytes], port: int, log: Path, seconds: float = 60
) -> None:
    """Until the service answers `/healthz` on `port` (its engine has started by then)."""
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"fleet serve did not start:\n{log.read_text()[-4000:]}")
        try:
            get_json(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except OSError:
            time.sleep(0.05)


def _stats() -> dict[int, list[str]]:
    """Every live process's /proc/<pid>/stat fields after the command name (field 3 on)."""
    out: dict[int, list[str]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                text = (proc / "stat").read_text()
            except OSError:
                continue
            out[int(proc.name)] = text[text.rindex(")") + 2 :].split()
    return out


def cpu_seconds(pids: Sequence[int], *, children: bool = False) -> float:
    """User + system CPU seconds of live processes (with `children`: of their waited-for
    children too); a process that is gone counts 0."""
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if children:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(port: int) -> float:
    """The CPU seconds of the PostgreSQL server listening on `port` on this machine: its
    postmaster (with its ended backends) and every live child."""
    stats = _stats()
    postmaster = None
    for pid in stats:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"postgres") and (b"-p", str(port).encode()) in pairwise(argv):
            postmaster = pid
            break
    if postmaster is None:
        return 0.0
    kids = [pid for pid, fields in stats.items() if int(fields[1]) == postmaster]  # ppid
    return cpu_seconds([postmaster], children=True) + cpu_seconds(kids)
