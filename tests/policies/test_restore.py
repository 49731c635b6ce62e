"""Restore mode with a fake engine that really stops and starts the fake cloud: the morning start
starts only what the evening stop stopped and nobody touched since."""

from __future__ import annotations

from datetime import datetime

import pytest

from fleet.domain import ServerStatus
from fleet.policies.records import FireStatus
from fleet.policies.restore import restore_verdict
from fleet.policies.store import PolicyConflict
from tests.policies.conftest import Env
from tests.policies.fakes import FakeOperations, utc

RUNNING, STOPPED = ServerStatus.RUNNING, ServerStatus.STOPPED


STOP: dict[str, object] = {
    "name": "nightly-stop",
    "cron": "0 20 * * mon-fri",
    "timezone": "Asia/Shanghai",
    "action": "stop",
    "targets": {"tags_any": {"env": ["dev"]}},
}
START: dict[str, object] = {
    "name": "morning-start",
    "cron": "0 8 * * mon-fri",
    "timezone": "Asia/Shanghai",
    "mode": "restore",
    "restore_from": "nightly-stop",
    "action": "start",
    "targets": {"tags_any": {"env": ["dev"]}},
}
# Monday 2 March 2026, 20:00 and Tuesday 08:00 in Shanghai
MON_20 = utc(2026, 3, 2, 12)
TUE_08 = utc(2026, 3, 3, 0)


def engine(env: Env) -> FakeOperations:
    assert isinstance(env.operations, FakeOperations)
    return env.operations


async def run_last_fire(env: Env, policy: str) -> list[tuple[str, str]]:
    fire = (await env.fires(policy))[-1]
    assert fire.status is FireStatus.FIRED and fire.operation_id is not None
    return engine(env).run(fire.operation_id)


def dev(env: Env, name: str, status: ServerStatus = RUNNING, **tags: str) -> None:
    hyphenated = {k.replace("_", "-"): v for k, v in tags.items()}
    env.cloud.add("ecs", name, status=status, tags={"env": "dev", **hyphenated})


async def setup(env: Env) -> None:
    await env.at(utc(2026, 3, 2))
    await env.service.create_policy(STOP, by="admin")
    await env.service.create_policy(START, by="admin")


async def test_restore_starts_only_what_the_stop_stopped_and_nobody_touched(
    fake_env: Env,
) -> None:
    env = fake_env
    dev(env, "a")  # stopped by the policy, untouched: restored
    dev(env, "by-hand", STOPPED)  # stopped by hand before the stop: never restored
    dev(env, "snoozed", fleet_snooze_until="2026-03-02")  # not stopped (snoozed)
    dev(env, "started")  # stopped by the policy, started by hand: left alone
    dev(env, "touched")  # stopped by the policy, started and stopped again by hand: left alone
    dev(env, "optout", fleet_opt_out="true")
    await setup(env)
    await env.tick_at(MON_20)
    stopped = await run_last_fire(env, "nightly-stop")
    assert sorted(s for _, s in stopped) == ["a", "started", "touched"]
    await env.tick_at(utc(2026, 3, 2, 12, 5))  # the sweep records what the stop stopped
    env.cloud.change("ecs", "started", status=RUNNING)
    env.cloud.change("ecs", "touched", status=RUNNING)
    env.cloud.change("ecs", "touched", status=STOPPED)
    env.cloud.change("ecs", "snoozed", status=STOPPED)  # stopped by hand in the night
    await env.tick_at(TUE_08)
    restore = (await env.fires("morning-start"))[-1]
    assert restore.status is FireStatus.FIRED
    started = await run_last_fire(env, "morning-start")
    assert started == [("ecs", "a")]
    assert env.cloud.get("ecs", "by-hand").status is STOPPED
    assert env.cloud.get("ecs", "snoozed").status is STOPPED
    assert env.cloud.get("ecs", "touched").status is STOPPED
    reasons = restore.details["skipped_by_reason"]
    assert isinstance(reasons, dict)
    assert reasons == {
        "changed since the stop (touched by hand?): left alone": 1,
        "running now (started by hand?): left alone": 1,
    }
    stop_fire = (await env.fires("nightly-stop"))[-1]
    assert stop_fire.consumed_by == restore.id


async def test_a_stop_is_restored_once_and_survives_a_holiday_restore(fake_env: Env) -> None:
    env = fake_env
    dev(env, "a")
    await env.at(utc(2026, 3, 5))
    holiday = ["2026-03-09"]  # Monday 9 March
    await env.service.create_policy(STOP | {"skip_dates": [*holiday, "2026-03-10"]}, by="admin")
    await env.service.create_policy(START | {"skip_dates": holiday}, by="admin")
    await env.tick_at(utc(2026, 3, 6, 12))  # Friday 20:00: stop
    assert await run_last_fire(env, "nightly-stop") == [("ecs", "a")]
    await env.tick_at(utc(2026, 3, 9, 0))  # Monday 08:00: holiday, skipped
    assert (await env.fires("morning-start"))[-1].status is FireStatus.SKIPPED
    await env.tick_at(utc(2026, 3, 10, 0))  # Tuesday 08:00: restores Friday's stop
    assert await run_last_fire(env, "morning-start") == [("ecs", "a")]
    env.cloud.change("ecs", "a", status=STOPPED)  # stopped by hand on Tuesday
    await env.tick_at(utc(2026, 3, 11, 0))  # Wednesday: Friday's stop was restored already
    wednesday = (await env.fires("morning-start"))[-1]
    assert (wednesday.status, wednesday.reason) == (FireStatus.SKIPPED, "no servers to act on")
    assert env.cloud.get("ecs", "a").status is STOPPED
    assert len(engine(env).created) == 2


async def test_restore_reads_the_stop_operation_when_no_sweep_harvested_it(
    fake_env: Env,
) -> None:
    env = fake_env
    dev(env, "a")
    dev(env, "b")
    await setup(env)
    await env.tick_at(MON_20)
    await run_last_fire(env, "nightly-stop")
    env.cloud.change("ecs", "b", status=RUNNING)
    await env.tick_at(TUE_08)  # no sweep in between: the records come from the operation now
    assert await run_last_fire(env, "morning-start") == [("ecs", "a")]


async def test_a_dry_run_stop_gives_nothing_to_restore(fake_env: Env) -> None:
    env = fake_env
    dev(env, "a")
    await env.at(utc(2026, 3, 2))
    await env.service.create_policy(STOP | {"dry_run_only": True}, by="admin")
    await env.service.create_policy(START, by="admin")
    await env.tick_at(MON_20)
    await run_last_fire(env, "nightly-stop")
    await env.tick_at(TUE_08)
    restore = (await env.fires("morning-start"))[-1]
    assert (restore.status, restore.reason) == (FireStatus.SKIPPED, "no servers to act on")


async def test_preview_of_a_restore_shows_candidates_without_consuming(fake_env: Env) -> None:
    env = fake_env
    dev(env, "a")
    await setup(env)
    await env.tick_at(MON_20)
    await run_last_fire(env, "nightly-stop")
    await env.at(utc(2026, 3, 2, 23))
    preview = (await env.service.preview("morning-start", n=1)).to_json()
    targets = preview["targets"]
    assert isinstance(targets, dict) and targets["acting"] == 1
    assert (await env.fires("nightly-stop"))[-1].consumed_by is None


async def test_the_stop_policy_cannot_be_deleted_while_a_restore_pairs_with_it(
    fake_env: Env,
) -> None:
    await setup(fake_env)
    with pytest.raises(PolicyConflict):
        await fake_env.service.delete_policy("nightly-stop", by="admin")
    with pytest.raises(PolicyConflict):  # it would no longer be a stop policy
        await fake_env.service.replace_policy("nightly-stop", STOP | {"action": "reboot"}, "a")
    with pytest.raises(PolicyConflict):  # one restore per stop policy
        await fake_env.service.create_policy(START | {"name": "second-start"}, by="admin")


def test_restore_verdict_reasons() -> None:
    from fleet.domain import Provider, ServerRef
    from fleet.policies.model import compile_policy, parse_spec
    from fleet.policies.records import HarvestedServer

    policy = compile_policy(parse_spec(START))
    record = HarvestedServer("ecs", "a", "stopped", "v1")

    def now(status: ServerStatus, updated: str | None, **tags: str) -> ServerRef:
        tags = {"env": "dev", **{k.replace("_", "-"): v for k, v in tags.items()}}
        return ServerRef("ecs", Provider.HUAWEI_ECS, "a", "a", status, tags=tags, updated=updated)

    day = datetime(2026, 3, 3).date()
    assert restore_verdict(policy, record, now(STOPPED, "v1"), day) == (True, "")
    assert restore_verdict(policy, record, now(STOPPED, None), day) == (True, "")
    assert not restore_verdict(policy, record, now(STOPPED, "v2"), day)[0]
    assert not restore_verdict(policy, record, now(RUNNING, "v1"), day)[0]
    assert not restore_verdict(policy, record, None, day)[0]
    assert not restore_verdict(policy, record, now(STOPPED, "v1", env="prod"), day)[0]
    snoozed = now(STOPPED, "v1", fleet_snooze_until="2026-03-03")
    assert restore_verdict(policy, record, snoozed, day) == (False, "snoozed until 2026-03-03")
