"""A `make serve`-style service in its own process: `fleet db upgrade`, then `fleet serve` with the
embedded simulator, a bootstrap admin token file and a URL file (the API listens on port 0)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLEET = [sys.executable, "-m", "fleet.cli"]


@dataclass(frozen=True)
class Live:
    url: str
    token: str
    sim_url: str
    env: dict[str, str]
    log: Path
    pid: int

    def get(self, path: str) -> dict[str, object]:
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as resp:  # loopback only
            data: dict[str, object] = json.loads(resp.read())
            return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], url_file: Path, log: Path) -> str:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"fleet serve did not start:\n{log.read_text()[-4000:]}")
        if url_file.is_file() and url_file.read_text().strip():
            url = url_file.read_text().strip()
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    return url
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def live_service(workdir: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[Live]:
    """Migrate a fresh SQLite file, start `fleet serve`, yield its URL and admin token, stop it."""
    sim_port = free_port()
    env = {
        **os.environ,
        "FLEET_DATABASE__URL": f"sqlite+aiosqlite:///{workdir / 'fleet.db'}",
        "FLEET_SERVICE__PORT": "0",
        "FLEET_SIMULATOR__PORT": str(sim_port),
        "FLEET_SIMULATOR__SPEED": "100",
        "FLEET_ENGINE__POLL_INTERVAL": "0.3",
        "FLEET_LOGGING__FORMAT": "json",
        "FLEET_BOOTSTRAP_TOKEN_FILE": str(workdir / "admin.token"),
        **(extra_env or {}),
    }
    env.pop("FLEET_URL", None)
    env.pop("FLEET_TOKEN", None)
    config = ["--config", str(ROOT / "config" / "demo.toml")]
    subprocess.run(
        [*FLEET, "db", "upgrade", *config], cwd=ROOT, env=env, check=True, capture_output=True
    )
    log, url_file = workdir / "serve.log", workdir / "url"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*FLEET, "serve", *config, "--url-file", str(url_file)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = _wait_ready(proc, url_file, log)
        token = (workdir / "admin.token").read_text().strip()
        yield Live(url, token, f"http://127.0.0.1:{sim_port}", env, log, proc.pid)
    finally:
        _stop(proc)
