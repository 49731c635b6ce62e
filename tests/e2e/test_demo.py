"""`make demo`'s scenario (scripts/demo.py): it runs to the end, says what it promised, exits 0
and leaves nothing running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_its_scenario_and_leaves_nothing_running(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FLEET_SIMULATOR__SPEED": "100",
        "FLEET_ENGINE__POLL_INTERVAL": "0.3",
        "TMPDIR": str(tmp_path),
    }
    for name in ("FLEET_URL", "FLEET_TOKEN", "FLEET_DATABASE__URL", "FLEET_SERVICE__PORT"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "scripts/demo.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-2000:]
    steps = ("1/5 dry run", "2/5 the reboot campaign", "3/5 stop", "4/5 resize", "5/5 a scheduled")
    for step in (*steps, "summary"):
        assert f"== {step}" in out
    # the policy: created through the API, previewed, fired by hand once, its dry run planned
    assert "policy web-evening-stop created" in out
    assert re.search(r"a fire now: \d+ of \d+ servers to act on", out)
    assert re.search(r"policy web-evening-stop: slot \S+ fired now\n  dry-run operation \S+", out)
    assert "policy fire: planned; run again in the same minute: " in out
    assert re.search(r"dry run \w+ \(reboot\): \d+ servers to act on", out)
    assert "ETA:" in out
    summary = out[out.index("== summary") :]
    rows = {tuple(line.split()[:3]) for line in summary.splitlines() if line.strip()}
    assert ("reboot", "ecs-sim,bms-sim,easystack-sim", "succeeded") in rows
    assert ("stop", "ecs-sim", "stopped") in rows
    assert ("resize", "ecs-sim", "succeeded") in rows
    assert ("resize", "easystack-sim", "succeeded") in rows
    stop = next(line.split() for line in summary.splitlines() if line.startswith("stop "))
    assert stop[4] == "3"  # the three injected failures, and the error budget stopped the rest
    assert stop[5] == "0"  # none unknown: a refused call is evidence
    assert int(stop[7]) > 0
    for key in ("ecs-sim:action", "bms-sim:action", "easystack-sim:action"):
        [line] = [row for row in summary.splitlines() if row.startswith(key)]
        assert line.split()[-1] == "0"  # no throttled answers
    assert "demo finished: everything as expected" in out
    # the progress bars went to stderr, one line per step when not on a terminal
    assert re.search(r"\[#+\]\s+\d+/\d+\s+succeeded", done.stderr)
    # nothing left behind: the service process is gone and the temporary directory removed
    pid = int(re.search(r"service pid (\d+) stopped \(exit 0\)", out).group(1))  # type: ignore[union-attr]
    assert (
        not Path(f"/proc/{pid}").exists()
        or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    )
    assert not list(tmp_path.glob("fleet-demo-*"))
