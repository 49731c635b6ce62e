"""The documented curl and CLI examples, run verbatim against a `make serve`-style service.

Every fenced block right after an `<!-- example -->` line of the document is run, in order, in
one bash session (`set -euo pipefail`), with `FLEET_URL` and `FLEET_TOKEN` set as the document
tells the reader to set them.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.api.live import ROOT, live_service

DOC = ROOT / "README.md"
MARKER = "<!-- example -->"


def example_blocks(text: str) -> list[str]:
    blocks = re.findall(rf"{re.escape(MARKER)}\s*\n```(?:bash|sh)\n(.*?)\n```", text, flags=re.S)
    return [b.strip() for b in blocks]


def test_the_document_has_runnable_examples() -> None:
    blocks = example_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    assert DOC.read_text(encoding="utf-8").count(MARKER) == len(blocks)
    script = "\n".join(blocks)
    for needed in (
        "/v1/operations",
        "/events",
        "/v1/servers",
        "/metrics",
        "fleet run",
        "fleet run create",
        "fleet ops",
    ):
        assert needed in script


@pytest.mark.timeout(300)
def test_examples_work_against_a_live_service(tmp_path: Path) -> None:
    blocks = example_blocks(DOC.read_text(encoding="utf-8"))
    script = "set -euo pipefail\n" + "\n".join(blocks) + "\n"
    with live_service(tmp_path) as live:
        env = {**live.env, "FLEET_URL": live.url, "FLEET_TOKEN": live.token}
        env.pop("FLEET_TOKEN_FILE", None)
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        log = live.log.read_text(encoding="utf-8")
    out = done.stdout
    assert done.returncode == 0, f"{out[-3000:]}\n{done.stderr[-3000:]}\n{log[-2000:]}"
    for expected in (
        '{"status":"ok"}',  # healthz
        '"rate_key":"ecs-sim:action"',  # endpoints with their rate keys
        '"plan":{"targets":',  # the dry run's plan
        "event: end",  # the event stream ran to the end of the stop
        '"state":"succeeded"',  # the stop, shown after its end
        '"items":[{"endpoint":"bms-sim"',  # the inventory
        'fleet_operations{state="succeeded"}',  # metrics
        "3.1.0",  # the OpenAPI document
        "ETA:",  # `fleet run --dry-run`
        "quota of easystack-sim: ",  # the create's dry run, with the quota the cloud reports
        "ci-bot\toperator\tactive",  # `fleet tokens list`
    ):
        assert expected in out, expected
    assert out.count(": succeeded") >= 4  # the `fleet run ... --wait` summaries (two creates)
    assert os.path.exists(tmp_path / "admin.token")
