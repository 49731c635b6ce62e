"""What the door refuses in configuration stops the start as a configuration error naming the
file and the field (`fleet serve` prints it on one line and exits 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.service import open_fleet
from fleet.settings import SettingsError, load_with_defaults
from tests.integration.test_fleet_end_to_end import demo_settings


async def test_a_file_policy_the_door_refuses_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(
        '[[policies]]\nname = "grow-metal"\ncron = "0 20 * * *"\naction = "resize"\n'
        'params = { flavor = "physical.s3.large" }\ntargets = { endpoints = ["bms-sim"] }\n',
        encoding="utf-8",
    )
    settings = demo_settings(tmp_path)
    files = settings.policies.model_copy(update={"files": [str(path)]})
    settings = settings.model_copy(update={"policies": files})
    with pytest.raises(SettingsError, match=r"policies\.toml: policies\[0\]\.targets\.endpoints"):
        async with open_fleet(settings):
            pass


def test_a_bad_delete_guard_is_refused_when_the_settings_load(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text('[guards.delete]\nmax_percent = "lots"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match=r"guards\.delete\.max_percent"):
        load_with_defaults([str(path)])
