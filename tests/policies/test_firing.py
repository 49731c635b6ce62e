"""Firing with a fake clock and explicit fire times, on SQLite and PostgreSQL: each slot once,
daylight-saving nights, holidays, misfires, snooze, manual runs, interrupted fires."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest

from fleet.domain import ServerStatus
from fleet.engine.admission import Admission
from fleet.policies.cron import Schedule
from fleet.policies.firing import Firing
from fleet.policies.model import PolicyError
from fleet.policies.records import FireStatus, Trigger
from fleet.policies.service import PolicyService
from fleet.policies.store import PolicyConflict
from jobs.operations import Operations
from jobs.records import OperationView
from jobs.strategy import BlastRadius
from tests.policies.conftest import Env
from tests.policies.fakes import utc

NIGHTLY: dict[str, object] = {
    "name": "nightly",
    "cron": "0 20 * * *",
    "timezone": "Asia/Shanghai",
    "action": "stop",
    "targets": {"tags_all": {"env": "dev"}},
}


def fleet_of(env: Env, n: int = 3) -> None:
    for i in range(n):
        env.cloud.add("ecs", f"s{i}", tags={"env": "dev"})
    env.cloud.add("ecs", "prod-1", tags={"env": "prod"})


async def ops_of(env: Env) -> list[OperationView]:
    assert isinstance(env.operations, Operations)
    return list((await env.operations.list(limit=1000)).items)


async def test_a_slot_fires_once_whoever_ticks_and_however_often(env: Env) -> None:
    fleet_of(env)
    await env.service.create_policy(NIGHTLY, by="admin")
    slot = utc(2026, 3, 1, 12)  # 20:00 in Shanghai
    await env.tick_at(slot + timedelta(milliseconds=300))
    await env.service.tick()
    await env.replica("w2").tick()  # a second replica, same database
    rerun = await env.replica("w3").run_now("nightly", by="admin", slot=slot)
    ops = await ops_of(env)
    assert len(ops) == 1
    op = ops[0].operation
    assert op.idempotency_key == "policy:nightly:2026-03-01T12:00:00Z"
    assert op.kind == "stop" and op.created_by == "policy:nightly"
    assert op.selector["ids"] == ["s0", "s1", "s2"] and op.selector["endpoints"] == ["ecs"]
    assert not rerun.created and rerun.fire.operation_id == op.id
    [fire] = await env.fires("nightly")
    assert (fire.status, fire.trigger, fire.worker, fire.targets) == (
        FireStatus.FIRED,
        Trigger.SCHEDULE,
        "w1",
        3,
    )


async def test_berlin_half_hourly_across_both_changes_fires_each_slot_once(env: Env) -> None:
    env.cloud.add("ecs", "s1", tags={"env": "dev"})
    await env.at(utc(2026, 3, 28, 22, 50))
    await env.service.create_policy(
        NIGHTLY | {"name": "berlin", "cron": "*/30 * * * *", "timezone": "Europe/Berlin"},
        by="admin",
    )
    for start, end in (
        (utc(2026, 3, 28, 23), utc(2026, 3, 29, 3)),  # spring forward at 01:00 UTC
        (utc(2026, 10, 24, 22), utc(2026, 10, 25, 3)),  # fall back at 01:00 UTC
    ):
        await env.at(start - timedelta(minutes=1))
        await env.service.tick()  # the days between are caught up and skipped (outside grace)
        t = start
        while t <= end:
            await env.tick_at(t + timedelta(seconds=1))
            t += timedelta(minutes=5)
        fired = [f for f in await env.fires("berlin") if f.status is FireStatus.FIRED]
        window = [f.scheduled_at for f in fired if start <= f.scheduled_at <= end]
        expected = [s.at for s in Schedule.of("*/30 * * * *", "Europe/Berlin").between(
            start - timedelta(seconds=1), end, 1000)]  # fmt: skip
        assert window == expected
    fires = await env.fires("berlin")
    assert len({f.scheduled_at for f in fires}) == len(fires)
    keys = [v.operation.idempotency_key for v in await ops_of(env)]
    assert len(keys) == len(set(keys)) == sum(f.status is FireStatus.FIRED for f in fires)
    # fall back: 02:00 and 02:30 CEST fired, the repeated 02:00/02:30 CET did not
    fall = {f.scheduled_at for f in fires if f.status is FireStatus.FIRED}
    assert utc(2026, 10, 25, 0, 30) in fall and utc(2026, 10, 25, 1, 0) not in fall
    assert utc(2026, 10, 25, 2, 0) in fall


async def test_holidays_are_recorded_as_skipped_with_their_calendar(env: Env) -> None:
    fleet_of(env)
    calendars = {"cn": frozenset({datetime(2026, 3, 2).date()})}
    service = env.service
    service.calendars = dict(calendars)
    await service.create_policy(NIGHTLY | {"skip_calendars": ["cn"]}, by="admin")
    for day in (1, 2, 3):
        await env.tick_at(utc(2026, 3, day, 12, 0, 1))
    fires = await env.fires("nightly")
    assert [f.status for f in fires] == [FireStatus.FIRED, FireStatus.SKIPPED, FireStatus.FIRED]
    assert fires[1].reason == "skip day 2026-03-02 (calendar cn)"
    assert fires[1].operation_id is None
    assert len(await ops_of(env)) == 2


async def test_a_slot_missed_within_the_grace_runs_once_late(env: Env) -> None:
    fleet_of(env)
    await env.service.create_policy(NIGHTLY | {"misfire_grace": "15m"}, by="admin")
    await env.tick_at(utc(2026, 3, 1, 12, 14))  # down from before 20:00 until 20:14
    [fire] = await env.fires("nightly")
    assert fire.status is FireStatus.FIRED and fire.trigger is Trigger.SCHEDULE
    assert fire.claimed_at - fire.scheduled_at == timedelta(minutes=14)


async def test_a_slot_missed_beyond_the_grace_is_recorded_not_run(env: Env) -> None:
    fleet_of(env)
    await env.service.create_policy(NIGHTLY | {"misfire_grace": "15m"}, by="admin")
    await env.tick_at(utc(2026, 3, 3, 12, 20))  # down for three evenings
    fires = await env.fires("nightly")
    assert [f.status for f in fires] == [FireStatus.SKIPPED] * 3
    assert fires[-1].reason == "missed by 20m (misfire_grace 15m)"
    assert fires[0].reason == "missed by 2d20m (misfire_grace 15m)"
    assert await ops_of(env) == []
    await env.tick_at(utc(2026, 3, 4, 12))  # back on time: the next evening fires
    assert (await env.fires("nightly"))[-1].status is FireStatus.FIRED


async def test_several_missed_slots_within_the_grace_run_once(env: Env) -> None:
    fleet_of(env)
    await env.service.create_policy(
        NIGHTLY | {"cron": "0 * * * *", "misfire_grace": "3h"}, by="admin"
    )
    await env.tick_at(utc(2026, 3, 1, 2, 30))  # 01:00 and 02:00 missed, both within 3h
    fires = await env.fires("nightly")
    assert [(f.scheduled_at.hour, f.status) for f in fires] == [
        (1, FireStatus.SKIPPED),
        (2, FireStatus.FIRED),
    ]
    assert fires[0].reason == "missed; coalesced into the slot at 2026-03-01T02:00:00Z"
    assert len(await ops_of(env)) == 1


async def test_snooze_is_honoured_until_its_day_and_not_after(env: Env) -> None:
    fleet_of(env)
    env.cloud.change("ecs", "s1", tags={"env": "dev", "fleet-snooze-until": "2026-03-02"})
    await env.service.create_policy(NIGHTLY, by="admin")
    for day in (2, 3):
        await env.tick_at(utc(2026, 3, day, 12))
    on, after = (
        v.operation for v in sorted(await ops_of(env), key=lambda v: v.operation.created_at)
    )
    assert on.selector["ids"] == ["s0", "s2"]
    assert after.selector["ids"] == ["s0", "s1", "s2"]
    [first] = [f for f in await env.fires("nightly") if f.scheduled_at == utc(2026, 3, 2, 12)]
    assert first.details["skipped_by_reason"] == {"snoozed until 2026-03-02": 1}


async def test_nothing_to_act_on_creates_no_operation(env: Env) -> None:
    env.cloud.add("ecs", "s1", tags={"env": "dev", "fleet-opt-out": "true"})
    await env.service.create_policy(NIGHTLY, by="admin")
    await env.tick_at(utc(2026, 3, 1, 12))
    [fire] = await env.fires("nightly")
    assert (fire.status, fire.reason) == (FireStatus.SKIPPED, "no servers to act on")
    assert await ops_of(env) == []


async def test_run_now_twice_in_a_minute_is_one_fire_and_can_take_over_a_skipped_slot(
    env: Env,
) -> None:
    fleet_of(env)
    await env.service.create_policy(NIGHTLY | {"dry_run_only": True}, by="admin")
    await env.at(utc(2026, 3, 1, 9, 15, 10))
    first = await env.service.run_now("nightly", by="alice")
    await env.at(utc(2026, 3, 1, 9, 15, 50))
    second = await env.service.run_now("nightly", by="bob")
    assert first.created and not second.created and second.fire.id == first.fire.id
    [op] = await ops_of(env)
    assert op.operation.dry_run and op.operation.created_by == "alice"
    # a slot skipped while down can be re-run by hand, once
    await env.tick_at(utc(2026, 3, 2, 13))
    missed = utc(2026, 3, 2, 12)
    assert [f.status for f in await env.fires("nightly") if f.scheduled_at == missed] == [
        FireStatus.SKIPPED
    ]
    taken = await env.service.run_now("nightly", by="alice", slot=missed)
    again = await env.service.run_now("nightly", by="alice", slot=missed)
    assert taken.created and taken.fire.status is FireStatus.FIRED
    assert not again.created and len(await ops_of(env)) == 2
    for wrong in (utc(2026, 3, 2, 12, 1), utc(2026, 3, 9, 12)):  # not a slot; a future slot
        with pytest.raises(PolicyError) as info:
            await env.service.run_now("nightly", by="alice", slot=wrong)
        assert info.value.field == "slot"


async def test_an_interrupted_fire_is_finished_with_the_same_operation(env: Env) -> None:
    fleet_of(env)
    view = await env.service.create_policy(NIGHTLY, by="admin")
    policy = env.service.compile(view.record)
    slot = policy.schedule.slot_at(utc(2026, 3, 1, 12))
    assert slot is not None
    await env.at(slot.at)
    # a process claimed the slot and wrote its operation, then died before creating it
    record, _ = await env.store.claim(
        "nightly", slot.at, trigger=Trigger.SCHEDULE, key="policy:nightly:2026-03-01T12:00:00Z",
        dry_run=False, worker="dead", by="schedule", now=env.clock.now(),
    )  # fmt: skip
    evaluation = await env.service.firing.evaluate(policy, slot, record.id)
    from fleet.policies.targets import operation_request, request_json

    act = operation_request(policy, evaluation, key=record.idempotency_key, reason="r", by="x")
    new = await env.service.firing.admission.admit(act)
    await env.store.set_request(record.id, request_json(new), 3, evaluation.details())
    env.cloud.add("ecs", "late", tags={"env": "dev"})  # a server that appeared since
    await env.service.tick()
    await env.replica("w2").tick()
    [fire] = await env.fires("nightly")
    [op] = await ops_of(env)
    assert fire.status is FireStatus.FIRED and fire.operation_id == op.operation.id
    assert op.operation.selector["ids"] == ["s0", "s1", "s2"]  # what the dead process chose


async def test_a_manual_claim_without_a_request_is_redone_after_it_went_stale(env: Env) -> None:
    fleet_of(env)
    await env.service.create_policy(NIGHTLY, by="admin")
    await env.at(utc(2026, 3, 1, 12))
    await env.store.claim(
        "nightly", utc(2026, 3, 1, 12), trigger=Trigger.MANUAL,
        key="policy:nightly:run:1", dry_run=False, worker="api-1",
        by="admin", now=env.clock.now(),
    )  # fmt: skip
    await env.service.tick()
    assert await ops_of(env) == []  # the process that runs it may still be working on it
    await env.tick_at(utc(2026, 3, 1, 12, 3))
    fires = await env.fires("nightly")
    assert [f.status for f in fires if f.trigger is Trigger.MANUAL] == [FireStatus.FIRED]


async def test_a_slot_claimed_by_a_leader_that_is_gone_is_redone_at_once(env: Env) -> None:
    """Only the leader claims scheduled slots and finishes interrupted fires: a slot another
    worker claimed without writing its request was left by a leader that died (or stepped down),
    and the new leader does not wait minutes for it."""
    fleet_of(env)
    await env.service.create_policy(NIGHTLY, by="admin")
    await env.at(utc(2026, 3, 1, 12))
    await env.store.claim(
        "nightly", utc(2026, 3, 1, 12), trigger=Trigger.SCHEDULE,
        key="policy:nightly:2026-03-01T12:00:00Z", dry_run=False, worker="dead",
        by="schedule", now=env.clock.now(),
    )  # fmt: skip
    await env.service.tick()
    [fire] = await env.fires("nightly")
    assert fire.status is FireStatus.FIRED and len(await ops_of(env)) == 1


async def test_disabled_policies_have_no_slots_and_reenabling_starts_afresh(env: Env) -> None:
    fleet_of(env)
    await env.service.create_policy(NIGHTLY | {"enabled": False}, by="admin")
    await env.tick_at(utc(2026, 3, 3, 12))
    assert await env.fires("nightly") == []
    await env.service.set_enabled("nightly", True, by="admin")
    await env.tick_at(utc(2026, 3, 3, 12, 5))
    assert await env.fires("nightly") == []  # 3 March 20:00 was before the re-enable
    await env.tick_at(utc(2026, 3, 4, 12))
    assert [f.status for f in await env.fires("nightly")] == [FireStatus.FIRED]


async def test_cleanup_deletes_only_due_servers_inside_the_guard(env: Env) -> None:
    env.cloud.add("ecs", "old", tags={"expires-at": "2026-02-27"})
    env.cloud.add("ecs", "marked", tags={"fleet-op": "delete@2026-03-01"})
    env.cloud.add("ecs", "later", tags={"fleet-op": "delete@2026-03-09"})
    env.cloud.add("ecs", "stopmark", tags={"fleet-op": "stop@2026-02-01"})
    env.cloud.add("ecs", "keep")
    spec = {
        "name": "cleanup", "cron": "30 2 * * *", "timezone": "Europe/Berlin",
        "mode": "cleanup", "action": "delete", "allow_delete": True,
        "guard": {"max_servers": 2, "max_percent": 50},
    }  # fmt: skip
    await env.service.create_policy(spec, by="admin")
    await env.tick_at(utc(2026, 3, 2, 1, 30))
    [op] = await ops_of(env)
    assert op.operation.kind == "delete"
    assert op.operation.selector["ids"] == ["marked", "old"]
    assert op.operation.guard is not None and op.operation.guard.max_servers == 2
    with pytest.raises(PolicyError) as info:
        await env.service.create_policy(spec | {"name": "unsafe", "allow_delete": False}, by="a")
    assert info.value.field == "allow_delete"


async def test_mark_policy_tags_servers_with_a_date_ahead(env: Env) -> None:
    env.cloud.add("ecs", "a", tags={"env": "sandbox"})
    env.cloud.add("ecs", "b", tags={"env": "sandbox", "fleet-op": "stop@2026-03-05"})
    spec = {
        "name": "mark", "cron": "0 6 * * *", "timezone": "UTC", "mode": "mark",
        "mark": {"op": "delete", "days": 14}, "targets": {"tags_all": {"env": "sandbox"}},
    }  # fmt: skip
    await env.service.create_policy(spec, by="admin")
    await env.tick_at(utc(2026, 3, 1, 6))
    [op] = await ops_of(env)
    assert op.operation.kind == "tag_add"
    assert op.operation.params["tags"] == {"fleet-op": "delete.2026-03-15"}
    assert op.operation.selector["ids"] == ["a"]


async def test_crud_refuses_conflicts_and_file_policies_are_read_only(env: Env) -> None:
    fleet_of(env)
    await env.service.create_policy(NIGHTLY, by="admin")
    with pytest.raises(PolicyConflict):
        await env.service.create_policy(NIGHTLY, by="admin")
    with pytest.raises(PolicyError) as info:
        await env.service.create_policy(
            NIGHTLY | {"name": "x", "targets": {"endpoints": ["nope"]}}, by="a"
        )
    assert info.value.field == "targets.endpoints"
    from fleet.policies.model import compile_policy, parse_spec

    file_policy = compile_policy(parse_spec(NIGHTLY | {"name": "from-file"}))
    assert await env.service.sync_files([file_policy]) == ["added from-file"]
    assert await env.service.sync_files([file_policy]) == []
    with pytest.raises(PolicyConflict):
        await env.service.delete_policy("from-file", by="admin")
    with pytest.raises(PolicyConflict):
        await env.service.sync_files([compile_policy(parse_spec(NIGHTLY))])  # an API name
    listed = [v.id for v in await env.service.list_policies()]
    assert listed == ["from-file", "nightly"]
    await env.service.delete_policy("nightly", by="admin")
    assert [v.id for v in await env.service.list_policies()] == ["from-file"]
    assert await env.service.sync_files([]) == ["removed from-file"]


async def test_listing_failures_are_retried_within_the_grace_then_recorded(env: Env) -> None:
    from fleet.drivers.errors import Transient

    fleet_of(env)
    await env.service.create_policy(NIGHTLY | {"misfire_grace": "10m"}, by="admin")
    endpoint_class = type(env.cloud.inventory()["ecs"])
    real = endpoint_class.list_servers

    async def broken(self: object, selector: object):  # type: ignore[no-untyped-def]
        raise Transient("endpoint down")
        yield  # pragma: no cover

    endpoint_class.list_servers = broken  # type: ignore[method-assign]
    try:
        await env.tick_at(utc(2026, 3, 1, 12))
        [fire] = await env.fires("nightly")
        assert fire.status is FireStatus.FIRING
        await env.tick_at(utc(2026, 3, 1, 12, 11))
        [fire] = await env.fires("nightly")
        assert fire.status is FireStatus.FAILED and "endpoint down" in str(fire.reason)
    finally:
        endpoint_class.list_servers = real  # type: ignore[method-assign]
    assert await ops_of(env) == []


async def test_preview_lists_next_slots_skips_and_targets_now(env: Env) -> None:
    fleet_of(env)
    env.cloud.change("ecs", "s2", status=ServerStatus.STOPPED)
    env.cloud.change("ecs", "s1", tags={"env": "dev", "fleet-snooze-until": "2026-12-01"})
    await env.service.create_policy(
        NIGHTLY | {"timezone": "Europe/Berlin", "cron": "30 2 * * *", "skip_dates": ["2026-03-30"]},
        by="admin",
    )
    await env.at(utc(2026, 3, 28))
    preview: Any = (await env.service.preview("nightly", n=3)).to_json()
    slots = preview["slots"]
    assert [s["local"] for s in slots] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:30:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]
    assert [s["fires"] for s in slots] == [True, True, False]
    assert "does not exist" in str(slots[1]["note"])
    targets = preview["targets"]
    assert targets["acting"] == 2 and targets["planner_skips"] == {"already stopped": 1}
    assert targets["skipped_by_reason"] == {"snoozed until 2026-12-01": 1}
    assert await ops_of(env) == [] and await env.fires("nightly") == []


@pytest.mark.parametrize(
    ("guard", "expected"),
    [
        (None, (1, None)),  # no guard of its own: the configured one
        ({"max_servers": 10}, (1, None)),  # looser: the configured one wins
        ({"max_percent": 10}, (1, Fraction(10))),  # stricter in another limit: both hold
    ],
)
async def test_a_policy_cannot_loosen_the_configured_guard(
    env: Env, guard: dict[str, object] | None, expected: tuple[int, Fraction | None]
) -> None:
    """The limits an admin configured on the endpoints hold for policy fires too: a policy's
    guard may only tighten them."""
    fleet_of(env)
    seen: list[list[str]] = []

    def ceiling(endpoints: Sequence[str]) -> BlastRadius:
        seen.append(list(endpoints))
        return BlastRadius(max_servers=1)

    inventory = env.cloud.inventory()
    admission = Admission(inventory, ceiling=ceiling)  # type: ignore[arg-type]
    firing = Firing(env.store, env.operations, inventory, env.clock, "w1", admission=admission)
    env.service = PolicyService(env.store, env.operations, inventory, env.clock, "w1", None, firing)
    spec = NIGHTLY if guard is None else NIGHTLY | {"guard": guard}
    await env.service.create_policy(spec, by="admin")
    await env.tick_at(utc(2026, 3, 1, 12, 0, 1))
    [op] = await ops_of(env)
    assert seen[-1] == ["ecs"]  # the fire's own endpoints (the policy's create asked too)
    assert op.operation.guard is not None
    assert (op.operation.guard.max_servers, op.operation.guard.max_percent) == expected


async def test_a_cleanup_fire_leaves_out_servers_whose_dialect_cannot_delete(env: Env) -> None:
    """A BMS server due for clean-up does not refuse the whole fire: it is left out with the
    reason its dialect declares, as an operation skips it, and the others are deleted."""
    from fleet.drivers.huawei.bms import CAPABILITIES as BMS

    fleet_of(env)
    env.cloud.dialects["bms"] = BMS
    env.cloud.add("ecs", "old", tags={"expires-at": "2026-02-27"})
    env.cloud.add("bms", "metal", tags={"expires-at": "2026-02-27"})
    spec = {
        "name": "cleanup", "cron": "30 2 * * *", "timezone": "Europe/Berlin",
        "mode": "cleanup", "action": "delete", "allow_delete": True,
        "guard": {"max_servers": 5}, "cleanup": {"expiry_tag": "expires-at"},
    }  # fmt: skip
    await env.service.create_policy(spec, by="admin")
    await env.tick_at(utc(2026, 3, 2, 1, 30))
    fire = (await env.fires("cleanup"))[-1]  # the slot before was missed (recorded, skipped)
    assert fire.status is FireStatus.FIRED, fire.reason
    [op] = await ops_of(env)
    assert op.operation.selector["endpoints"] == ["ecs"]
    assert op.operation.selector["ids"] == ["old"]
    skipped = fire.details["skipped_by_reason"]
    assert isinstance(skipped, dict)
    assert any(r.startswith("unsupported: Huawei BMS") for r in skipped), skipped
