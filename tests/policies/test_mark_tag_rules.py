"""The mark a mark policy writes is a tag every dialect with a tag API accepts: the simulator's
Huawei ECS v1 2D tag rules (value charset A-Z a-z 0-9 `_` `-` `.`, 43 characters; `@` is
`Ecs.0907`) and the Huawei Nova 1D tags BMS servers are tagged with (`key=value`, 80
characters, no `,` or `/`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import aiohttp
import pytest

from fleet.policies.model import Policy, compile_policy, parse_spec
from fleet.policies.tags import mark_value, parse_marker
from tests.simulator.huawei_client import Huawei, huawei
from tests.simulator.nova_client import Nova
from tests.simulator_fixtures import Sim, SimFactory

DAY = date(2026, 12, 6)


def mark_policy(op: str, days: int) -> Policy:
    return compile_policy(
        parse_spec(
            {
                "name": "mark-sandbox", "cron": "0 6 * * mon", "timezone": "Europe/Berlin",
                "mode": "mark", "mark": {"op": op, "days": days},
            }
        )
    )  # fmt: skip


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    async with simulator_factory(speed=0.001, ecs=2, bms=2, openstack=0) as running:
        for kind in ("ecs", "bms"):
            for server in running.world.visible(kind):
                server.status, server.vm_state, server.power_state = "ACTIVE", "active", 1
        yield running


@pytest.fixture
async def hw(sim: Sim) -> AsyncIterator[Huawei]:
    async with huawei(sim) as client:
        yield client


# the example's mark, the longest action name, the longest delay
MARKS = [("delete", 14), ("tag_remove", 3650), ("stop", 0)]


@pytest.mark.parametrize(("op", "days"), MARKS)
async def test_the_mark_is_accepted_by_the_ecs_v1_tag_rules(hw: Huawei, op: str, days: int) -> None:
    key, value = mark_value(mark_policy(op, days), DAY)
    server = hw.sim.world.visible("ecs")[0]
    answer = await hw.call(
        "POST",
        f"/v1/{{pid}}/servers/{server.id}/tags/action",
        {"action": "create", "tags": [{"key": key, "value": value}]},
    )
    assert answer.status == 204, answer.body
    assert server.tags[key] == value
    assert parse_marker(server.tags[key]) is not None


@pytest.mark.parametrize(("op", "days"), MARKS)
async def test_the_mark_is_accepted_as_a_bms_nova_tag(sim: Sim, op: str, days: int) -> None:
    key, value = mark_value(mark_policy(op, days), DAY)
    server = sim.world.visible("bms")[0]
    async with aiohttp.ClientSession() as http:
        reply = await Nova(sim, http, "huawei").call(
            "PUT", f"/servers/{server.id}/tags/{key}={value}"
        )
    assert reply.status in (201, 204), reply.body
    assert server.tags[key] == value
