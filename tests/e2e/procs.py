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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

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
