"""`bench/peers.py` in a tiny configuration: every contender runs against its own simulator
process, fleet through `fleet serve`; the JSON has the documented shape and fleet stopped every
server of every task without a 429."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROW_KEYS = {"task", "who", "round", "ratio", "done", "total", "throttled", "calls", "cpu_s"}


@pytest.mark.timeout(240)
def test_peers_bench_tiny_run_has_every_contender_and_fleet_done() -> None:
    out = subprocess.run(
        [sys.executable, "bench/peers.py", "--json", "--es", "6", "--ecs", "12", "--window", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    assert out.returncode in (0, 1), out.stderr  # 1: the ratio bar, not met at this size
    result = json.loads(out.stdout)
    rows = result["tasks"]
    assert all(set(row) >= ROW_KEYS for row in rows), rows
    who = {(row["task"], row["who"]) for row in rows}
    assert who == {
        ("easystack-stop-6", "naive"),
        ("easystack-stop-6", "c7n-retry"),
        ("easystack-stop-6", "sdk-rate-limit"),
        ("easystack-stop-6", "fleet"),
        ("huawei-ecs-stop-12", "c7n-chunks"),
        ("huawei-ecs-stop-12", "c7n-chunks+retry"),
        ("huawei-ecs-stop-12", "fleet"),
    }
    fleet = [row for row in rows if row["who"] == "fleet"]
    assert all(row["done"] == row["total"] and row["throttled"] == 0 for row in fleet), fleet
    # Under every limit, each contender stops everything too, with one call per server or chunk.
    assert all(row["done"] == row["total"] for row in rows), rows
    assert {row["calls"] for row in rows if row["task"] == "easystack-stop-6"} == {6}
    assert all(row["ratio"] > 0 for row in rows)
