"""Policy files named in the settings are loaded, scheduled and fired by the running service."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.service import open_fleet
from fleet.settings import SettingsError
from tests.integration.test_fleet_end_to_end import demo_settings, wait_terminal

POLICY = """
[[policies]]
name = "evening-web-stop"
cron = "0 20 * * *"
timezone = "Europe/Berlin"
action = "stop"
targets = { endpoints = ["ecs-sim"], tags_all = { role = "web" } }
dry_run_only = true
"""


async def test_file_policies_are_loaded_previewed_and_fired(tmp_path: Path) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(POLICY)
    settings = demo_settings(tmp_path)
    settings = settings.model_copy(
        update={"policies": settings.policies.model_copy(update={"files": [str(path)]})}
    )
    async with open_fleet(settings) as fleet:
        assert fleet.policies is not None
        names = [p.to_json()["spec"]["name"] for p in await fleet.policies.list_policies()]  # type: ignore[index]
        assert names == ["evening-web-stop"]
        preview = (await fleet.policies.preview("evening-web-stop", n=3)).to_json()
        assert len(preview["slots"]) == 3  # type: ignore[arg-type]
        first = await fleet.policies.run_now("evening-web-stop", by="tests")
        again = await fleet.policies.run_now("evening-web-stop", by="tests")
        assert first.created
        assert not again.created  # the same slot: no second operation
        op_id = str(first.fire.to_json()["operation_id"])
        view = await wait_terminal(fleet, op_id)
        assert view.operation.dry_run
        assert view.operation.idempotency_key is not None
        assert view.operation.idempotency_key.startswith("policy:evening-web-stop:")


async def test_a_policy_naming_an_unknown_endpoint_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(POLICY.replace('"ecs-sim"', '"nowhere"'))
    settings = demo_settings(tmp_path)
    settings = settings.model_copy(
        update={"policies": settings.policies.model_copy(update={"files": [str(path)]})}
    )
    with pytest.raises(
        SettingsError, match=r"policies\[0\]\.targets\.endpoints: unknown endpoint .nowhere."
    ):
        async with open_fleet(settings):
            pass
