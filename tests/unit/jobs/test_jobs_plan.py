"""Plan arithmetic: what planning counts, and an ETA computed from the budgets."""

from __future__ import annotations

from fractions import Fraction

import pytest

from jobs.plan import SKIPPED_SEQ_BASE, EtaInputs, PlanBuilder, send_seconds
from jobs.ports import ActionProfile, FleetSize, PlanItem, StepProfile
from jobs.ratelimit import Budget, Unit
from jobs.records import PlanSummary
from jobs.seen import SeenIds
from jobs.strategy import BlastRadius, Strategy, parse_amount


@pytest.mark.parametrize(
    ("calls", "servers", "budgets", "seconds"),
    [
        (50, 50, [Budget(50, 60.0)], 0.0),  # the first window's worth leaves at once
        (51, 51, [Budget(50, 60.0)], 60.0),
        (200, 200, [Budget(50, 60.0)], 180.0),
        (2, 2000, [Budget(1000, 60.0, Unit.SERVERS)], 60.0),
        (100, 100, [Budget(1000, 60.0, Unit.SERVERS), Budget(10, 1.0)], 9.0),
        (100, 100, [], 0.0),  # no budget: never waits
        (0, 0, [Budget(1, 60.0)], 0.0),
    ],
)
def test_send_seconds(calls: int, servers: int, budgets: list[Budget], seconds: float) -> None:
    assert send_seconds(calls, servers, budgets) == seconds


def test_seen_ids_keep_each_id_once_through_growth_in_16_bytes_a_slot() -> None:
    seen = SeenIds(capacity=16)
    ids = [f"server-{i:06d}" for i in range(20_000)]
    assert all(seen.add(i) for i in ids)  # every distinct id is new, through 11 doublings
    assert not any(seen.add(i) for i in ids[::7])  # every one seen again is a duplicate
    assert seen.add("") and not seen.add("")
    assert len(seen) == 20_001
    assert seen.nbytes == 16 * 32_768  # at most two thirds full: 20,001 ids in 32,768 slots


def test_the_builder_numbers_targets_and_skips_and_drops_duplicates() -> None:
    builder = PlanBuilder()
    rows = [
        builder.add(PlanItem("a", "k1", "b")),
        builder.add(PlanItem("x", "k1", "b", skip_reason="excluded")),
        builder.add(PlanItem("b", "k2", "b", scope="ep2")),
        builder.add(PlanItem("a", "k1", "b")),  # duplicate
        builder.add(PlanItem("y", "k1", "b", skip_reason="already stopped")),
    ]
    assert [r.seq if r else None for r in rows] == [
        0,
        SKIPPED_SEQ_BASE,
        1,
        None,
        SKIPPED_SEQ_BASE + 1,
    ]
    assert (builder.acting, builder.skipped) == (2, 2)
    assert builder.skipped_by_reason == {"excluded": 1, "already stopped": 1}
    assert builder.rate_keys == ("k1", "k2")


def eta_inputs(
    budgets: dict[str, list[Budget]],
    *,
    max_batch: int = 1,
    seconds: float = 0.0,
    steps: int = 1,
    strategy: Strategy | None = None,
    poll: float = 5.0,
) -> EtaInputs:
    profile = ActionProfile(tuple(StepProfile(max_batch, seconds) for _ in range(steps)))
    return EtaInputs(
        profile=profile,
        strategy=strategy or Strategy(),
        poll_interval=poll,
        budgets=lambda key: budgets.get(key, []),
    )


def summary_of(count: int, eta: EtaInputs, key: str = "bms:action") -> PlanSummary:
    builder = PlanBuilder()
    for i in range(count):
        builder.add(PlanItem(f"s{i}", key, "b"))
    return builder.summary(eta)


def test_eta_of_a_budget_bound_campaign() -> None:
    # 200 single-server calls at 50 per minute: the last leaves after 3 minutes, and the cloud
    # needs 20 s (observed on a 5 s poll grid) to finish it.
    summary = summary_of(200, eta_inputs({"bms:action": [Budget(50, 60.0)]}, seconds=18.0))
    assert summary.eta_seconds == pytest.approx(180.0 + 20.0)
    [key] = summary.rate_keys
    assert (key.servers, key.batches, key.calls, key.send_seconds) == (200, 200, 200, 180.0)
    assert key.budgets == ("50 requests / 60s",)


def test_eta_with_batches_counting_servers() -> None:
    # ECS: 1,000 servers per minute, 1,000 per call: 2,500 servers = 3 calls, 2 minutes of sending
    eta = eta_inputs({"ecs:action": [Budget(1000, 60.0, Unit.SERVERS)]}, max_batch=1000)
    summary = summary_of(2500, eta, key="ecs:action")
    assert summary.rate_keys[0].calls == 3
    assert summary.eta_seconds == pytest.approx(120.0)


def test_eta_bound_by_max_in_flight() -> None:
    # no rate limit; 10 at a time, 30 s each: 100 servers take 10 rounds
    eta = eta_inputs({}, seconds=30.0, strategy=Strategy(max_in_flight=10), max_batch=100)
    assert summary_of(100, eta, key="free").eta_seconds == pytest.approx(300.0)


def test_eta_adds_waves_and_steps() -> None:
    waves = (parse_amount(1, "w", minimum=1), parse_amount("100%", "w", minimum=1))
    eta = eta_inputs({}, seconds=10.0, steps=3, strategy=Strategy(waves=waves), max_batch=50)
    summary = summary_of(20, eta, key="free")
    assert summary.waves == (1, 19)
    assert summary.wave_count == 2
    assert summary.eta_seconds == pytest.approx(2 * 3 * 10.0)
    assert summary.rate_keys[0].calls == 3 + 3  # each wave: one call per step


def test_eta_takes_each_endpoint_its_own_cloud_time() -> None:
    # a slow key whose servers settle fast, a fast key whose servers settle slowly: the wave ends
    # with the latest of (last send + that key's cycle), not the slowest send plus the slowest cycle
    budgets = {"es:action": [Budget(120, 60.0)], "bms:action": []}
    seconds = {"es:action": 10.0, "bms:action": 300.0}
    eta = EtaInputs(
        profile=ActionProfile((StepProfile(1, 300.0),)),
        profile_for=lambda key: ActionProfile((StepProfile(1, seconds[key]),)),
        strategy=Strategy(),
        poll_interval=5.0,
        budgets=lambda key: budgets[key],
    )
    builder = PlanBuilder()
    for i in range(480):  # 4 windows of 120 calls: the last leaves after 3 minutes
        builder.add(PlanItem(f"e{i}", "es:action", "b"))
    for i in range(10):
        builder.add(PlanItem(f"b{i}", "bms:action", "b"))
    assert builder.summary(eta).eta_seconds == pytest.approx(max(180.0 + 10.0, 0.0 + 300.0))
    seconds["bms:action"] = 20.0
    assert builder.summary(eta).eta_seconds == pytest.approx(180.0 + 10.0)


def test_summary_round_trips_through_json() -> None:
    builder = PlanBuilder()
    builder.add(PlanItem("a", "k", "b", scope="ep"))
    builder.add(PlanItem("z", "k", "b", skip_reason="excluded"))
    builder.fleet(FleetSize("ep", 10))
    summary = builder.summary(eta_inputs({"k": [Budget(5, 1.0)]}))
    assert PlanSummary.from_json(summary.to_json()) == summary
    assert summary.fleet_by_scope == {"ep": 10}


def test_the_builder_applies_the_blast_radius_guard() -> None:
    builder = PlanBuilder()
    for i in range(3):
        builder.add(PlanItem(f"s{i}", "k", "b", scope="ep"))
    builder.fleet(FleetSize("ep", 10))
    assert builder.refusal(BlastRadius(max_servers=3)) is None
    reason = builder.refusal(BlastRadius(max_percent=Fraction(20)))
    assert reason is not None
    assert "3/10" in reason


# --- multi-step actions: each step on its own key, for the targets it applies to -------------


def ecs_resize_profile(revert_key: str = "ecs:action") -> ActionProfile:
    """ECS v1: stop (if running) and start (if it was running) on the batch action key, the
    resize one server per call on its own key, and a compensation that a success never sends."""
    return ActionProfile(
        (
            StepProfile(1000, 20.0, rate_key="ecs:action", only_if_running=True),
            StepProfile(1, 60.0, rate_key="ecs:resize"),
            StepProfile(1000, 20.0, rate_key="ecs:action", only_if_running=True),
            StepProfile(
                1000, 20.0, rate_key=revert_key, only_if_running=True, on_failure_only=True
            ),
        )
    )


def multi_step_eta(
    profile: ActionProfile, budgets: dict[str, list[Budget]], strategy: Strategy | None = None
) -> EtaInputs:
    return EtaInputs(
        profile=profile,
        profile_for=lambda key: profile,
        strategy=strategy or Strategy(),
        poll_interval=5.0,
        budgets=lambda key: budgets.get(key, []),
    )


def resize_builder(up: int, down: int, key: str = "ecs:action") -> PlanBuilder:
    builder = PlanBuilder()
    for i in range(up):
        builder.add(PlanItem(f"up{i}", key, "ecs:resize/ecs-v1:0", {"status": "running"}))
    for i in range(down):
        builder.add(PlanItem(f"down{i}", key, "ecs:resize/ecs-v1:0", {"status": "stopped"}))
    return builder


ECS_BUDGETS = {
    "ecs:action": [Budget(1000, 60.0, Unit.SERVERS)],
    "ecs:resize": [Budget(1, 10.0)],  # one resize per 10 s: 6 resizes take 50 s to send
}


def test_a_multi_step_plan_counts_each_step_on_its_own_key() -> None:
    builder = resize_builder(up=3, down=3)
    assert builder.running == {("ecs:action", "ecs:resize/ecs-v1:0"): 3}  # counters, not items
    summary = builder.summary(multi_step_eta(ecs_resize_profile(), ECS_BUDGETS))
    plans = {k.rate_key: k for k in summary.rate_keys}
    assert set(plans) == {"ecs:action", "ecs:resize"}
    action, resize = plans["ecs:action"], plans["ecs:resize"]
    # the running servers: one stop call, one start call (not the stopped ones, not the revert)
    assert (action.servers, action.batches, action.calls, action.send_seconds) == (3, 1, 2, 0.0)
    assert action.budgets == ("1000 servers / 60s",)
    # every server is resized, one per call, within the resize key's own budget
    assert (resize.servers, resize.batches, resize.calls, resize.send_seconds) == (6, 6, 6, 50.0)
    assert resize.budgets == ("1 requests / 10s",)
    # the last resize leaves after 50 s, then takes its 60 s and the start's 20 s; the action
    # key's last send (at once) plus the whole 100 s path ends earlier
    assert summary.eta_seconds == pytest.approx(max(50.0 + 80.0, 0.0 + 100.0))


def test_only_if_running_steps_cost_nothing_for_stopped_servers() -> None:
    summary = resize_builder(up=0, down=3).summary(
        multi_step_eta(ecs_resize_profile(), ECS_BUDGETS)
    )
    plans = {k.rate_key: k for k in summary.rate_keys}
    # the sub-jobs are planned on the action key (it is listed, for dispatching) but send nothing
    assert (plans["ecs:action"].servers, plans["ecs:action"].calls) == (0, 0)
    assert (plans["ecs:resize"].servers, plans["ecs:resize"].calls) == (3, 3)
    assert summary.eta_seconds == pytest.approx(20.0 + 60.0)  # no stop, no start on the way


def test_a_compensation_step_counts_no_call_and_no_time() -> None:
    # the revert on a key of its own: never on the way of a success, so that key is not listed
    profile = ecs_resize_profile(revert_key="ecs:revert")
    summary = resize_builder(up=2, down=0).summary(multi_step_eta(profile, {}))
    assert [(k.rate_key, k.calls) for k in summary.rate_keys] == [
        ("ecs:action", 2),
        ("ecs:resize", 2),
    ]
    assert summary.eta_seconds == pytest.approx(20.0 + 60.0 + 20.0)  # not + the revert's 20 s


def test_running_servers_are_shared_between_waves() -> None:
    waves = (parse_amount("50%", "w", minimum=1), parse_amount("100%", "w", minimum=1))
    eta = multi_step_eta(ecs_resize_profile(), {}, Strategy(waves=waves))
    summary = resize_builder(up=4, down=4).summary(eta)
    assert summary.waves == (4, 4)
    plans = {k.rate_key: k for k in summary.rate_keys}
    assert plans["ecs:action"].calls == 2 * 2  # each wave: a stop and a start of its 2 running
    assert plans["ecs:resize"].calls == 8
    assert summary.eta_seconds == pytest.approx(2 * 100.0)
