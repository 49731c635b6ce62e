"""Cloud Custodian (c7n 0.9.53 + c7n-huaweicloud 0.1.1) runs its Huawei ECS policies against the
simulator, end to end.

`custodian run` runs in a subprocess (with the provider registered, see `custodian_huawei`),
pointed at the simulator on loopback the way the Huawei SDK documents it: the ECS and IAM region
endpoints through `HUAWEICLOUD_SDK_REGION_<SERVICE>_<REGION>` (TMS is always the `cn-north-4`
region in c7n-huaweicloud) and IAM's global endpoint through `HUAWEICLOUD_SDK_IAM_ENDPOINT`.
What Custodian did is read from the simulator's request log and world. Simulated time is frozen
and moved by hand between the runs.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.simulator_fixtures import Sim, SimFactory

ROOT = Path(__file__).resolve().parents[3]
RUN_SECONDS = 90.0  # one `custodian run` (most of it is importing ~40 Huawei SDK packages)

FILTER = "[{type: value, key: tags, op: contains, value: env=cust}]"
RUN_1 = f"""
policies:
  - name: stop-cust
    resource: huaweicloud.ecs
    filters: {FILTER}
    actions: [{{type: instance-stop, mode: SOFT}}]
  - name: reboot-prod
    resource: huaweicloud.ecs
    filters: [{{type: value, key: tags, op: contains, value: env=prod}}]
    actions: [{{type: instance-reboot, mode: SOFT}}]
  - name: tag-cust
    resource: huaweicloud.ecs
    filters: {FILTER}
    actions: [{{type: tag, key: owner, value: alice}}]
"""
RUN_2 = f"""
policies:
  - name: start-cust
    resource: huaweicloud.ecs
    filters: {FILTER}
    actions: [instance-start]
  - name: untag-cust
    resource: huaweicloud.ecs
    filters: {FILTER}
    actions: [{{type: remove-tag, tags: [owner]}}]
"""


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    async with simulator_factory(speed=1e-9, ecs=7, bms=1, openstack=0) as running:
        yield running


def _environment(sim: Sim, home: Path) -> dict[str, str]:
    ep = sim.endpoints["huawei"]
    region = ep["region"].replace("-", "_").upper()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUAWEI", "OS_"))}
    env.update(
        HOME=str(home),
        HUAWEI_DEFAULT_REGION=ep["region"],
        HUAWEI_ACCESS_KEY_ID=ep["ak"],
        HUAWEI_SECRET_ACCESS_KEY=ep["sk"],
        HUAWEI_PROJECT_ID=ep["project_id"],
        HUAWEICLOUD_SDK_IAM_ENDPOINT=sim.base_url,
        **{
            f"HUAWEICLOUD_SDK_REGION_ECS_{region}": sim.base_url,
            f"HUAWEICLOUD_SDK_REGION_IAM_{region}": sim.base_url,
            "HUAWEICLOUD_SDK_REGION_TMS_CN_NORTH_4": sim.base_url,
        },
    )
    return env


async def custodian_run(sim: Sim, tmp_path: Path, name: str, policies: str) -> str:
    """`custodian run` on `policies`; its output, after checking it succeeded in time."""
    policy_file = tmp_path / f"{name}.yml"
    policy_file.write_text(policies)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.contract.sdk.custodian_huawei",
        "run",
        "--cache-period",
        "0",
        "-s",
        str(tmp_path / f"{name}-out"),
        str(policy_file),
        cwd=ROOT,
        env=_environment(sim, tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "Traceback" not in text, text
    return text


def _calls(sim: Sim, path_end: str, since: int) -> list[dict[str, object]]:
    return [
        e
        for e in sim.requests()
        if int(str(e["seq"])) > since and str(e["path"]).endswith(path_end)
    ]


async def test_custodian_stops_starts_reboots_and_tags_ecss_by_tag_value(
    sim: Sim, tmp_path: Path
) -> None:
    ecs = sim.world.visible("ecs")
    for s in ecs:
        s.tags = {"env": "dev"}
        s.status, s.vm_state, s.power_state = "ACTIVE", "active", 1
    cust, prod = ecs[:3], ecs[3:5]
    for s in cust:
        s.tags = {"env": "cust"}
    for s in prod:
        s.tags = {"env": "prod"}
    cust[2].status, cust[2].vm_state, cust[2].power_state = "SHUTOFF", "stopped", 4
    active_cust = {s.id for s in cust[:2]}

    await custodian_run(sim, tmp_path, "run1", RUN_1)
    actions = _calls(sim, "/cloudservers/action", 0)
    assert [(a["action"], set(a["server_ids"])) for a in actions] == [
        ("stop", active_cust),  # Custodian stops only the ACTIVE ones it selected
        ("reboot", {s.id for s in prod}),
    ]
    assert actions[0]["body"] == {
        "os-stop": {"servers": [{"id": i} for i in actions[0]["server_ids"]], "type": "SOFT"}
    }
    assert {s.id: s.task_state for s in ecs if s.task_state} == {
        **dict.fromkeys(active_cust, "powering-off"),
        **{s.id: "rebooting" for s in prod},
    }
    assert [s.tags for s in cust] == [{"env": "cust", "owner": "alice"}] * 3
    assert all("owner" not in s.tags for s in ecs[3:])
    tagging = _calls(sim, "/resource-tags/batch-create", 0)
    assert len(tagging) == 1 and set(tagging[0]["server_ids"]) == {s.id for s in cust}
    assert _calls(sim, "/v3/auth/domains", 0)[0]["status"] == 200
    assert {e["rate_key"] for e in _calls(sim, "/cloudservers/detail", 0)} == {"huawei-ecs:detail"}

    sim.advance(60)
    assert {s.status for s in cust} == {"SHUTOFF"} and {s.status for s in prod} == {"ACTIVE"}
    seen = sim.ctx.log.seq
    await custodian_run(sim, tmp_path, "run2", RUN_2)
    starts = _calls(sim, "/cloudservers/action", seen)
    assert [(a["action"], set(a["server_ids"])) for a in starts] == [
        ("start", {s.id for s in cust})
    ]
    assert [s.tags for s in cust] == [{"env": "cust"}] * 3
    assert len(_calls(sim, "/resource-tags/batch-delete", seen)) == 1
    sim.advance(60)
    assert {s.status for s in cust} == {"ACTIVE"}
    assert all(e["status"] in (200, 204) for e in sim.requests())
