"""The executor's profile tells the plan on which rate key each step of a recipe is sent, to
which servers it applies, and which step is a compensation (see `jobs.plan`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import pytest

from fleet.domain import Action, ActionParams, Provider, ServerRef, ServerStatus
from fleet.drivers.base import Capabilities, Driver
from fleet.drivers.huawei.ecs import CAPABILITIES
from fleet.engine.executor import FleetExecutor
from fleet.engine.opspec import parse_params, parse_targets
from fleet.engine.planner import FleetPlanner
from jobs.plan import was_running


@dataclass
class StubEcs:
    provider: Provider = Provider.HUAWEI_ECS
    capabilities: Capabilities = CAPABILITIES

    def max_batch(self, action: Action) -> int:
        return CAPABILITIES.actions[action].max_batch

    def check(self, action: Action, params: ActionParams) -> None:
        assert action in CAPABILITIES.actions


def executor() -> FleetExecutor:
    return FleetExecutor({"ecs": cast(Driver, StubEcs())})


def test_an_ecs_resize_profile_names_each_step_key() -> None:
    steps = executor().profile("resize", "ecs:action").steps
    assert [s.rate_key for s in steps] == ["ecs:action", "ecs:resize", "ecs:action", "ecs:action"]
    assert [s.only_if_running for s in steps] == [True, False, True, True]
    assert [s.on_failure_only for s in steps] == [False, False, False, True]
    assert [s.max_batch for s in steps] == [1000, 1, 1000, 1000]
    # dispatching asks for the profile by the key a sub-job is on: the same steps
    assert executor().profile("resize", "ecs:resize").steps == steps


def test_a_single_step_profile_is_sent_on_its_own_key() -> None:
    (step,) = executor().profile("stop", "ecs:action").steps
    assert (step.rate_key, step.only_if_running, step.on_failure_only) == (
        "ecs:action",
        False,
        False,
    )
    # without an endpoint the key is unknown: the plan counts it on the target's own key
    assert {s.rate_key for s in executor().profile("resize").steps} == {None}


@pytest.mark.parametrize(
    ("status", "running"), [(ServerStatus.RUNNING, True), (ServerStatus.STOPPED, False)]
)
def test_the_plan_reads_running_where_the_planner_writes_it(
    status: ServerStatus, running: bool
) -> None:
    server = ServerRef("ecs", Provider.HUAWEI_ECS, "s1", "n", status, flavor="f1")
    driver = cast(Driver, StubEcs())
    item = FleetPlanner({"ecs": driver})._item(
        "ecs",
        driver,
        "resize",
        parse_params("resize", {"flavor": "f2"}),
        server,
        parse_targets({"endpoints": ["ecs"]}),
        None,
    )
    assert item.skip_reason is None
    assert item.rate_key == "ecs:action"  # the first step's key; the resize is on ecs:resize
    assert was_running(item) is running
