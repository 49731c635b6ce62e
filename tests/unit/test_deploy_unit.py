"""The systemd unit template of docs/deploy.md (`deploy/fleet@.service`) passes
`systemd-analyze verify` without a warning, for an instance, with the install prefix pointed at
this checkout (whose `.venv/bin/fleet` must exist, as `/opt/fleet/.venv/bin/fleet` does once
installed). Skipped where systemd-analyze is not installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "fleet@.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_the_unit_template_verifies_cleanly(tmp_path: Path) -> None:
    text = UNIT.read_text().replace("/opt/fleet", str(ROOT))
    instance = tmp_path / "fleet@8081.service"
    instance.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(instance)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_the_unit_names_each_replica_by_its_port_and_stops_it_with_sigterm() -> None:
    text = UNIT.read_text()
    assert "ExecStart=/opt/fleet/.venv/bin/fleet serve --config /etc/fleet/fleet.toml" in text
    assert "--worker %H-%i" in text and "FLEET_SERVICE__PORT=%i" in text
    assert "KillSignal=SIGTERM" in text
