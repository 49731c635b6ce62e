"""Fires go through the one door too: a policy stored before the door checked it cannot act on
the whole fleet, a refused policy can still be switched off, a resize fire leaves out the clouds
that do not list its flavor instead of being refused whole, and a mark policy on a fleet without
tag APIs is admitted (fleet keeps the marks)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import pytest

from fleet.policies.model import PolicyError, parse_spec
from fleet.policies.records import FireStatus, Source
from tests.policies import fakes
from tests.policies.conftest import Env
from tests.policies.fakes import utc

EVERYTHING: dict[str, object] = {
    "name": "all", "cron": "0 20 * * *", "timezone": "UTC", "action": "stop", "targets": {},
}  # fmt: skip


async def test_a_stored_policy_with_an_empty_selector_is_refused_at_its_fire(env: Env) -> None:
    for i in range(3):
        env.cloud.add("ecs", f"s{i}")
    await env.store.insert_policy(parse_spec(EVERYTHING), Source.API, "admin", env.clock.now())
    await env.tick_at(utc(2026, 3, 1, 20) + timedelta(seconds=1))
    fire = (await env.fires("all"))[-1]
    assert fire.status is FireStatus.REFUSED, (fire.status, fire.reason)
    assert fire.reason is not None and fire.reason.startswith("targets:")
    assert fire.operation_id is None


async def test_a_policy_the_door_refuses_can_still_be_switched_off(env: Env) -> None:
    env.cloud.add("ecs", "s0")
    await env.store.insert_policy(parse_spec(EVERYTHING), Source.API, "admin", env.clock.now())
    view = await env.service.set_enabled("all", False, by="admin")
    assert view.record.spec.enabled is False
    with pytest.raises(PolicyError):  # switched on again, the door refuses it
        await env.service.set_enabled("all", True, by="admin")


async def test_a_resize_fire_leaves_out_a_cloud_without_the_flavor(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def table(self: fakes.Endpoint) -> Mapping[str, str]:
        return {"s6.large.2": "s6.large.2"} if self.name == "ecs" else {"m1.small": "m1.small"}

    monkeypatch.setattr(fakes.Endpoint, "flavor_table", table)
    env.cloud.servers["os"] = {}
    env.cloud.add("ecs", "a", tags={"env": "dev"})
    env.cloud.add("os", "b", tags={"env": "dev"})
    spec = {"name": "grow", "cron": "0 20 * * *", "timezone": "UTC", "action": "resize",
            "params": {"flavor": "s6.large.2"}, "targets": {"tags_all": {"env": "dev"}}}  # fmt: skip
    await env.service.create_policy(spec, by="admin")
    await env.tick_at(utc(2026, 3, 1, 20) + timedelta(seconds=1))
    fire = (await env.fires("grow"))[-1]
    assert fire.status is FireStatus.FIRED, (fire.status, fire.reason)
    assert fire.request is not None
    assert fire.request["selector"]["ids"] == ["a"]  # type: ignore[index]
    skipped = fire.details["skipped_by_reason"]
    assert skipped == {"unsupported: flavor 's6.large.2' is not listed on os": 1}, skipped


async def test_an_unnamed_mark_policy_is_admitted_on_a_fleet_without_tag_api(env: Env) -> None:
    env.cloud.no_tags.add("ecs")
    env.cloud.add("ecs", "s0", tags={"env": "dev"})
    spec = {"name": "mark", "cron": "0 20 * * *", "timezone": "UTC", "mode": "mark",
            "mark": {"op": "stop", "days": 3}, "targets": {"tags_all": {"env": "dev"}}}  # fmt: skip
    view = await env.service.create_policy(spec, by="admin")
    assert view.record.id == "mark"


async def test_a_fire_without_an_operation_says_whether_anything_matched(env: Env) -> None:
    env.cloud.add("ecs", "s0", tags={"env": "dev", "fleet-opt-out": "true"})
    for name, tags in (("none", {"env": "nope"}), ("opted", {"env": "dev"})):
        spec = {"name": name, "cron": "0 20 * * *", "timezone": "UTC", "action": "stop",
                "targets": {"tags_all": tags}}  # fmt: skip
        await env.service.create_policy(spec, by="admin")
    await env.tick_at(utc(2026, 3, 1, 20) + timedelta(seconds=1))
    nothing = (await env.service.fires("none", limit=1))[0]
    assert (nothing.status, nothing.outcome) == (FireStatus.SKIPPED, "nothing_matched")
    opted = (await env.service.fires("opted", limit=1))[0]
    assert (opted.status, opted.outcome) == (FireStatus.SKIPPED, "skipped")
