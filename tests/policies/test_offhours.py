"""Schedule-mode policies over a fake cloud, minute by minute across Berlin's fall-back night:
the tagged server is stopped once at the period's end (in the first pass of the repeated hour),
nothing is started in the second pass, a start by hand in the stopped time is undone at the next
slot (level-triggered, decision D58; a minute cron has no slots in the second pass, so that
is 03:00 CET), and snoozed or untagged servers are left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fleet.domain import ServerStatus
from fleet.policies.records import FireStatus
from tests.policies.conftest import Env
from tests.policies.fakes import FakeOperations

EARLY: dict[str, object] = {
    "name": "early",
    "timezone": "Europe/Berlin",
    "periods": [{"endtime": "02:30"}],  # runs 00:00-02:30 every day
}
STOP: dict[str, object] = {
    "name": "sched-stop",
    "mode": "schedule",
    "action": "stop",
    "cron": "* * * * *",
    "timezone": "Europe/Berlin",
}
START = STOP | {"name": "sched-start", "action": "start"}
FIRST = datetime(2026, 10, 24, 23, 55, tzinfo=UTC)  # Sunday 01:55 CEST


async def _minutes(env: Env, ops: FakeOperations, until: datetime, done: set[str]) -> None:
    """Tick every minute up to `until`, running each new operation as the engine would."""
    while env.clock.now() < until:
        await env.tick_at(env.clock.now() + timedelta(minutes=1))
        for op_id in list(ops.ops):
            if op_id not in done:
                done.add(op_id)
                ops.run(op_id)


async def test_berlin_fall_back_night(fake_env: Env) -> None:
    env = fake_env
    ops = env.operations
    assert isinstance(ops, FakeOperations)
    await env.at(FIRST)
    env.cloud.add("ecs", "a", tags={"fleet-schedule": "early"})
    env.cloud.add("ecs", "snoozed", tags={"fleet-schedule": "early",
                                          "fleet-snooze-until": "2026-10-25"})  # fmt: skip
    env.cloud.add("ecs", "plain")
    env.cloud.add("ecs", "lost", tags={"fleet-schedule": "no-such"})
    await env.service.schedules.create_schedule(EARLY, by="t")
    await env.service.create_policy(STOP, by="t")
    await env.service.create_policy(START, by="t")
    done: set[str] = set()

    await _minutes(env, ops, datetime(2026, 10, 25, 1, 5, tzinfo=UTC), done)  # 02:05 CET
    assert [(n.kind, n.idempotency_key) for n in ops.created] == [
        ("stop", "policy:sched-stop:2026-10-25T00:30:00Z"),  # 02:30 CEST, the first pass
    ]
    assert env.cloud.get("ecs", "a").status is ServerStatus.STOPPED
    assert env.cloud.get("ecs", "snoozed").status is ServerStatus.RUNNING
    assert env.cloud.get("ecs", "plain").status is ServerStatus.RUNNING

    env.cloud.change("ecs", "a", status=ServerStatus.RUNNING)  # by hand, in the second pass
    await _minutes(env, ops, datetime(2026, 10, 25, 2, 0, tzinfo=UTC), done)  # 03:00 CET
    assert [(n.kind, n.idempotency_key) for n in ops.created][1:] == [
        # the next slot puts it right: 03:00 CET, as a cron has no slots in the second pass
        ("stop", "policy:sched-stop:2026-10-25T02:00:00Z"),
    ]
    assert env.cloud.get("ecs", "a").status is ServerStatus.STOPPED
    assert env.cloud.get("ecs", "plain").status is ServerStatus.RUNNING

    fires = await env.fires("sched-stop")
    # one record per minute slot, fired or skipped: 23:56-00:59 and 02:00 UTC (none in the
    # second pass of the repeated hour)
    assert [f.scheduled_at.strftime("%H:%M") for f in fires][63:] == ["00:59", "02:00"]
    assert len(fires) == 65
    quiet = [f for f in fires if f.status is FireStatus.SKIPPED]
    assert {f.reason for f in quiet} == {"no servers to act on"}
    stop = next(f for f in fires if f.operation_id is not None)
    assert stop.details["skipped_by_reason"] == {
        "snoozed until 2026-10-25": 1,
        "unknown schedule 'no-such' (fleet-schedule)": 1,
    }
    starts = await env.fires("sched-start")
    assert all(f.operation_id is None for f in starts)  # nothing started all night
