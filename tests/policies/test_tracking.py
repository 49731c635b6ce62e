"""Tracking after a fire: stop spans, drift, and `enforce`, on the fake engine and cloud (the
policy test helpers), through the policy service's sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from fleet.domain import ServerStatus
from fleet.policies.drift import DriftLog, Enforcer, enforce_key
from fleet.policies.records import FireStatus
from fleet.policies.savings import Prices, report
from fleet.policies.store_tracking import DriftRecord, TrackingStore
from fleet.policies.tracking import Tracker, TrackingConfig
from fleet.webhooks.store import WebhookStore
from fleet.webhooks.tables import WEBHOOK_OUTBOX
from tests.policies.conftest import Env
from tests.policies.fakes import FakeOperations

STOP: dict[str, object] = {
    "name": "nightly-stop",
    "cron": "0 20 * * *",
    "timezone": "Europe/Berlin",
    "action": "stop",
    "targets": {"tags_all": {"env": "dev"}},
}
MON_20 = datetime(2026, 3, 2, 19, tzinfo=UTC)  # Monday 20:00 in Berlin (UTC+1)


def track(
    env: Env, window: timedelta = timedelta(hours=12), every: timedelta = timedelta(0)
) -> TrackingStore:
    """The service's sweep also tracks (every sweep checks the servers)."""
    assert isinstance(env.operations, FakeOperations)
    env.operations.clock = env.clock
    store = TrackingStore(env.jobs.db)
    enforcer = Enforcer(store, env.service.firing.admission, env.operations, env.clock)
    config = TrackingConfig(check_interval=every, drift_window=window)
    env.service.tracker = Tracker(
        store, env.operations, env.cloud.inventory(), DriftLog(store, env.clock, enforcer), config
    )
    return store


async def stop_at_eight(env: Env) -> str:
    """The 20:00 fire, its operation run two minutes later, followed a minute after that."""
    await env.tick_at(MON_20)
    (fire,) = [f for f in await env.fires("nightly-stop") if f.status is FireStatus.FIRED]
    assert fire.operation_id is not None
    await env.at(MON_20 + timedelta(minutes=2))
    assert isinstance(env.operations, FakeOperations)
    env.operations.run(fire.operation_id)
    await env.tick_at(MON_20 + timedelta(minutes=3))
    return fire.operation_id


async def drift(store: TrackingStore) -> list[DriftRecord]:
    return list(reversed(await store.list_drift(limit=1000)))


async def drift_events(store: TrackingStore) -> list[dict[str, object]]:
    stmt = sa.select(WEBHOOK_OUTBOX).where(WEBHOOK_OUTBOX.c.type == "fleet.drift.detected")
    async with store.db.read() as conn:
        return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]


async def test_a_server_started_by_hand_after_the_stop_raises_one_drift(fake_env: Env) -> None:
    env = fake_env
    store = track(env)
    subscription = {"url": "http://127.0.0.1:9/hook", "events": ["fleet.drift.detected"]}
    await WebhookStore(store.db).create(
        subscription | {"filter": {}, "secret_ref": "env:X"}, "t", MON_20
    )
    env.cloud.add("ecs", "s1", tags={"env": "dev"})
    env.cloud.add("ecs", "s2", tags={"env": "dev"})
    await env.service.create_policy(STOP, by="admin")
    op_id = await stop_at_eight(env)
    spans = {s.server_id: s for s in await store.unended()}
    assert set(spans) == {"s1", "s2"}
    assert spans["s1"].stopped_at == MON_20 + timedelta(minutes=2)
    assert spans["s1"].origin.policy_id == "nightly-stop"

    by_hand = datetime(2026, 3, 2, 22, tzinfo=UTC)  # 23:00 in Berlin
    env.cloud.by_hand("ecs", "s1", ServerStatus.RUNNING, by_hand)
    await env.tick_at(by_hand + timedelta(minutes=7))
    await env.tick_at(by_hand + timedelta(minutes=20))  # later sweeps find nothing new

    (found,) = await drift(store)
    d = found.drift
    assert (d.server_id, d.kind, d.desired, d.observed) == ("s1", "left", "stopped", "running")
    assert d.changed_at == by_hand and d.origin.operation_id == op_id
    assert found.enforcement is None  # the policy does not enforce
    ended = [s for s in await store.spans_between(MON_20, by_hand + timedelta(days=1))]
    s1 = next(s for s in ended if s.server_id == "s1")
    assert (s1.ended_at, s1.end_source) == (by_hand, "instance_action")
    assert [s.server_id for s in await store.unended()] == ["s2"]
    # told to webhook subscribers once, in the transaction that recorded it
    (event,) = await drift_events(store)
    assert event["subject"] == "ecs/s1" and event["status"] == "pending"
    data = event["data"]
    assert isinstance(data, dict)
    assert (data["id"], data["kind"], data["operation_id"]) == (found.id, "left", op_id)


async def test_enforce_stops_the_drifted_server_once(fake_env: Env) -> None:
    env = fake_env
    store = track(env)
    env.cloud.add("ecs", "s1", tags={"env": "dev"})
    await env.service.create_policy(STOP | {"enforce": True}, by="admin")
    await stop_at_eight(env)
    ops = env.operations
    assert isinstance(ops, FakeOperations)

    first = datetime(2026, 3, 2, 22, tzinfo=UTC)
    env.cloud.by_hand("ecs", "s1", ServerStatus.RUNNING, first)
    await env.tick_at(first + timedelta(minutes=5))
    (found,) = await drift(store)
    assert found.enforcement == "enforced" and found.enforce_operation_id is not None
    enforcing = ops.ops[found.enforce_operation_id][0]
    assert enforcing.kind == "stop" and enforcing.selector["ids"] == ["s1"]
    fire_id = found.drift.origin.fire_id
    assert fire_id is not None
    assert enforcing.idempotency_key == enforce_key("nightly-stop", fire_id, "ecs", "s1")
    ops.run(found.enforce_operation_id)
    assert env.cloud.get("ecs", "s1").status is ServerStatus.STOPPED
    await env.tick_at(first + timedelta(minutes=10))  # the enforcing stop opens a span

    # started by hand again in the same night: recorded, not enforced a second time
    second = first + timedelta(hours=1)
    env.cloud.by_hand("ecs", "s1", ServerStatus.RUNNING, second)
    await env.tick_at(second + timedelta(minutes=5))
    await env.tick_at(second + timedelta(minutes=10))
    records = await drift(store)
    assert [r.enforcement for r in records] == ["enforced", "skipped"]
    assert records[1].drift.origin.operation_id == found.enforce_operation_id
    assert records[1].drift.origin.fire_id == fire_id  # the same slot
    assert sum(new.kind == "stop" for new in ops.created) == 2  # the fire, and one enforcement
    assert env.cloud.get("ecs", "s1").status is ServerStatus.RUNNING


async def test_a_server_that_did_not_stop_is_drift(fake_env: Env) -> None:
    env = fake_env
    store = track(env)
    env.cloud.add("ecs", "s1", tags={"env": "dev"})
    assert isinstance(env.operations, FakeOperations)
    env.operations.fail.add(("ecs", "s1"))
    await env.service.create_policy(STOP, by="admin")
    await stop_at_eight(env)
    (found,) = await drift(store)
    assert (found.drift.kind, found.drift.desired, found.drift.observed) == (
        "not_reached",
        "stopped",
        "failed",
    )
    assert await store.unended() == []


async def test_without_an_action_history_the_first_running_read_ends_the_span(
    fake_env: Env,
) -> None:
    env = fake_env
    store = track(env, window=timedelta(0))  # no drift: only the span
    env.cloud.no_history.add("ecs")
    env.cloud.add("ecs", "s1", tags={"env": "dev"})
    await env.service.create_policy(STOP, by="admin")
    await stop_at_eight(env)
    env.cloud.by_hand("ecs", "s1", ServerStatus.RUNNING, datetime(2026, 3, 2, 22, tzinfo=UTC))
    read = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)
    await env.tick_at(read)
    (span,) = await store.spans_between(MON_20, read + timedelta(hours=1))
    assert (span.ended_at, span.end_source, span.bound) == (read, "status_read", True)
    assert await drift(store) == []


async def test_a_stop_of_a_server_started_unseen_ends_its_earlier_span(fake_env: Env) -> None:
    """Started by hand between two checks and stopped again by fleet: the first span ends when
    the second stop found it running (a bound), never counted twice."""
    env = fake_env
    store = track(env, every=timedelta(days=1))  # no check of the servers after the first
    env.cloud.add("ecs", "s1", tags={"env": "dev"})
    await env.service.create_policy(STOP, by="admin")
    await stop_at_eight(env)
    env.cloud.by_hand("ecs", "s1", ServerStatus.RUNNING, datetime(2026, 3, 2, 20, tzinfo=UTC))
    await env.at(datetime(2026, 3, 2, 21, tzinfo=UTC))
    again = await env.service.run_now("nightly-stop", by="operator")
    assert again.fire.operation_id is not None
    await env.at(datetime(2026, 3, 2, 21, 1, tzinfo=UTC))
    assert isinstance(env.operations, FakeOperations)
    env.operations.run(again.fire.operation_id)
    await env.tick_at(datetime(2026, 3, 2, 21, 2, tzinfo=UTC))

    end = datetime(2026, 3, 2, 22, tzinfo=UTC)
    first, second = await store.spans_between(MON_20, end)
    assert (first.ended_at, first.end_source) == (
        datetime(2026, 3, 2, 21, tzinfo=UTC),
        "status_read",
    )
    assert second.ended_at is None and second.stopped_at == datetime(2026, 3, 2, 21, 1, tzinfo=UTC)
    got = report([first, second], MON_20, end, end, Prices("EUR", {}))
    assert got.total.seconds == (118 + 59) * 60  # 19:02-21:00 and 21:01-22:00 (UTC)
