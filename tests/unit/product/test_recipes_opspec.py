from collections.abc import Mapping
from typing import cast

import pytest

from fleet.domain import Action, ActionParams, PowerType, ServerStatus
from fleet.drivers.actions import Capabilities, Recipe
from fleet.drivers.base import Driver
from fleet.drivers.errors import Unsupported
from fleet.drivers.huawei.ecs import CAPABILITIES as ECS
from fleet.drivers.nova.driver import capabilities_for
from fleet.drivers.nova.requests import EASYSTACK_QUIRKS, OPENSTACK_QUIRKS
from fleet.engine.opspec import SpecError, params_json, parse_params, parse_targets
from jobs.records import SubJobRecord
from jobs.testing import subjob_record
from jobs.types import JSONValue


class StubEcs:
    """An endpoint with the ECS declarations (the executor's profile reads nothing else)."""

    capabilities = ECS

    def max_batch(self, action: Action) -> int:
        return ECS.spec(action).max_batch


OPENSTACK = capabilities_for(OPENSTACK_QUIRKS)
EASYSTACK = capabilities_for(EASYSTACK_QUIRKS)


def recipe_for(
    kind: str, caps: Capabilities, *, live: bool = False, status: ServerStatus | None = None
) -> Recipe:
    """The recipe the dialect declares for `kind` on a server in `status`."""
    return caps.recipe_for(kind, ActionParams(flavor="f", live=live), status)


def test_ecs_resize_stops_and_restarts_only_running_servers() -> None:
    r = recipe_for("resize", ECS)
    assert [s.action for s in r.steps] == [Action.STOP, Action.RESIZE, Action.START, Action.START]
    assert r.first_step(was_running=True) == 0
    assert r.first_step(was_running=False) == 1
    assert r.next_step(0, was_running=True) == 1
    assert r.next_step(1, was_running=True) == 2
    assert r.next_step(1, was_running=False) is None
    assert r.next_step(2, was_running=True) is None  # the compensation is never a success path
    assert r.revert_step() == 3


def test_ecs_resize_that_fails_starts_again_only_a_server_that_was_running() -> None:
    r = recipe_for("resize", ECS)
    assert r.compensation(1, was_running=True) == 3
    assert r.compensation(1, was_running=False) is None  # it stays stopped, as it was
    # a failed stop left the server running; a failed start-again is not retried as a "compensation"
    assert r.compensation(0, was_running=True) is None
    assert r.compensation(2, was_running=True) is None


def test_nova_resize_reverts_only_a_failed_confirm() -> None:
    r = recipe_for("resize", OPENSTACK)
    assert r.compensation(0, was_running=True) is None  # a failed resize changed nothing
    assert r.compensation(1, was_running=True) == 2
    assert r.compensation(1, was_running=False) == 2
    assert r.compensation(2, was_running=True) is None


def test_nova_resize_confirms_and_reverts_only_on_failure() -> None:
    r = recipe_for("resize", OPENSTACK)
    assert [s.action for s in r.steps] == [
        Action.RESIZE,
        Action.CONFIRM_RESIZE,
        Action.REVERT_RESIZE,
    ]
    assert r.next_step(0, was_running=True) == 1
    assert r.next_step(1, was_running=True) is None  # the revert step is never a success path
    assert r.revert_step() == 2


def test_easystack_live_resize_only_for_running_servers_when_asked() -> None:
    live = recipe_for("resize", EASYSTACK, live=True, status=ServerStatus.RUNNING)
    assert live.name == "resize/live"
    assert [s.action for s in live.steps] == [Action.RESIZE]
    stopped = recipe_for("resize", EASYSTACK, live=True, status=ServerStatus.STOPPED)
    assert stopped.name == "resize/nova"
    plain = recipe_for("resize", OPENSTACK, live=True, status=ServerStatus.RUNNING)
    assert plain.name == "resize/nova"


def test_every_recipe_is_found_by_its_stored_name() -> None:
    for kind in ("start", "stop", "reboot", "delete", "resize"):
        recipe = recipe_for(kind, OPENSTACK)
        assert OPENSTACK.recipe(recipe.name) == recipe
    assert recipe_for("stop", OPENSTACK).steps[0].action is Action.STOP
    with pytest.raises(KeyError):
        OPENSTACK.recipe("explode")
    with pytest.raises(Unsupported, match="does not support explode"):
        recipe_for("explode", OPENSTACK)


@pytest.mark.parametrize(
    ("kind", "raw", "field"),
    [
        ("teleport", {}, "action"),
        ("stop", {"type": "GENTLE"}, "params.type"),
        ("resize", {}, "params.flavor"),
        ("tag_add", {}, "params.tags"),
        ("stop", {"colour": "red"}, "params.colour"),
        ("resize", {"flavor": "x", "live": "yes"}, "params.live"),
        ("tag_add", {"tags": {"a": 1}}, "params.tags"),
        ("tag_add", {"tags": {"expires-at": "tomorrow"}}, "params.tags.expires-at"),
        ("tag_add", {"tags": {"expires-at": "2026-W01-1"}}, "params.tags.expires-at"),
        ("tag_add", {"tags": {"expires-at": "2026-02-30"}}, "params.tags.expires-at"),
    ],
)
def test_bad_params_name_the_field(kind: str, raw: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_params(kind, raw)
    assert err.value.field == field


def test_an_expiry_tag_is_removed_whatever_its_value() -> None:
    """Only the actions that set tags hold `expires-at` to a day: a tag_remove names any value
    (`""`: whatever it is), so a malformed expiry can be removed."""
    for value in ("", "tomorrow"):
        assert parse_params("tag_remove", {"tags": {"expires-at": value}}).tags == {
            "expires-at": value
        }
    assert parse_params("tag_add", {"tags": {"expires-at": "2030-01-01"}}).tags


def test_params_round_trip() -> None:
    p = parse_params("reboot", {"type": "hard"})
    assert p.type is PowerType.HARD
    assert parse_params("reboot", params_json(p)) == p
    r = parse_params("resize", {"flavor": "s6.large.2", "live": True})
    assert (r.flavor, r.live) == ("s6.large.2", True)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"ids": "abc"}, "selector.ids"),
        ({"statuses": ["sleeping"]}, "selector.statuses[0]"),
        ({"tags_all": {"env": 3}}, "selector.tags_all"),
        ({"name": ""}, "selector.name"),
        ({"exclude_tag": "=x"}, "selector.exclude_tag"),
        ({"everything": True}, "selector.everything"),
    ],
)
def test_bad_selectors_name_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_targets(raw)
    assert err.value.field == field


def test_selector_defaults_to_the_exclusion_tag_and_can_drop_it() -> None:
    t = parse_targets({"endpoints": ["a"], "tags_any": {"env": ["dev", "test"]}, "name": "web-*"})
    assert t.exclude_tag == ("fleet-exclude", "true")
    assert t.selector.tags_any == {"env": ("dev", "test")}
    assert parse_targets({"exclude_tag": None}).exclude_tag is None
    assert parse_targets({"exclude_tag": "keep=1"}).exclude_tag == ("keep", "1")


def test_the_first_poll_waits_for_the_action_time_unless_it_is_a_quick_variant() -> None:
    from fleet.drivers.actions import Step
    from fleet.engine.executor import FleetExecutor

    executor = FleetExecutor({}, action_seconds={"e": {"stop": 10.0}})
    soft = parse_params("stop", {"type": "SOFT"})
    assert executor._first_poll("e", Step(Action.STOP), soft) == pytest.approx(10.0)
    assert executor._first_poll("other", Step(Action.START), soft) == pytest.approx(20.0)
    hard = parse_params("stop", {"type": "HARD"})
    assert executor._first_poll("e", Step(Action.STOP), hard) is None
    live = parse_params("resize", {"flavor": "f", "live": True})
    assert executor._first_poll("e", Step(Action.RESIZE), live) is None
    # a compensation step (revert) waits like any action; only the ETA leaves it out
    revert = Step(Action.REVERT_RESIZE, on_failure_only=True)
    offline = parse_params("resize", {"flavor": "f"})
    assert executor._first_poll("e", revert, offline) == pytest.approx(20.0)
    ecs = recipe_for("resize", ECS).steps
    with_ecs = FleetExecutor({"ecs": cast(Driver, StubEcs())})
    timed = zip(with_ecs.profile("resize").steps, ecs, strict=True)
    assert all((p.seconds > 0) is not s.on_failure_only for p, s in timed)


def test_only_the_live_recipe_is_live() -> None:
    def live(status: ServerStatus) -> bool:
        return recipe_for("resize", EASYSTACK, live=True, status=status).live

    assert live(ServerStatus.RUNNING)
    assert not live(ServerStatus.STOPPED)


def _rolled_back(memo: Mapping[str, JSONValue]) -> SubJobRecord:
    return subjob_record(
        seq=0,
        target_id="e/s",
        kind="resize",
        payload={"server_id": "s", "status": "running"},
        memo=memo,
        step=3,
    )


def test_a_compensation_reports_the_failure_it_undid() -> None:
    from fleet.engine.calls import compensated as _compensated
    from fleet.engine.calls import compensation_failed as _compensation_failed
    from jobs.outcomes import Failed

    ecs = recipe_for("resize", ECS)
    nova = recipe_for("resize", OPENSTACK)
    memo = {
        "failure": "[Ecs.0013] no room",
        "failure_code": "Ecs.0013",
        "failure_message": "no room",
    }
    sj = _rolled_back(memo)
    started = _compensated(ecs.steps[3], sj)
    assert started.code == "Ecs.0013"
    assert started.reason.startswith("no room (the server was started again")
    reverted = _compensated(nova.steps[2], sj)
    assert (reverted.code, reverted.reason) == (
        "resize_reverted",
        "reverted to the old flavor: [Ecs.0013] no room",
    )
    again = _compensation_failed(ecs.steps[3], sj, "Ecs.0605", "ECS locked.", False)
    assert again == Failed(
        "Ecs.0013", "no room (start to compensate failed: [Ecs.0605] ECS locked.)"
    )
    # a sub-job rolled back before codes were kept in its memo (a restart across the upgrade)
    old = _rolled_back({"failure": "[x.1] boom"})
    assert _compensated(nova.steps[2], old) == Failed(
        "resize_reverted", "reverted to the old flavor: [x.1] boom"
    )
    assert _compensation_failed(nova.steps[2], old, "c", "m", True) == Failed("c", "m", True)
