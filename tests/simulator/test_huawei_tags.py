"""Huawei ECS v1 2D tags in the simulator: create/delete rules, reads, and query-by-tag paging."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from fleet.simulator.world import Server
from tests.simulator.huawei_client import Answer, Huawei, huawei
from tests.simulator_fixtures import SimFactory

QUERY = "/v1/{pid}/servers/resource_instances/action"


@pytest.fixture
async def hw(simulator_factory: SimFactory) -> AsyncIterator[Huawei]:
    async with simulator_factory(speed=1e-9, ecs=8, bms=2, openstack=0) as sim, huawei(sim) as c:
        for i, server in enumerate(sim.world.visible("ecs")):
            server.name = f"ecs-{i:02d}"
            server.tags = {"env": "prod" if i < 3 else "dev", "team": "a" if i % 2 else "b"}
        sim.world.visible("bms")[0].tags = {"env": "prod"}
        yield c


def first(hw: Huawei) -> Server:
    return hw.sim.world.visible("ecs")[0]


async def tags_action(hw: Huawei, server: Server, action: str, tags: Sequence[object]) -> Answer:
    path = f"/v1/{{pid}}/servers/{server.id}/tags/action"
    return await hw.call("POST", path, {"action": action, "tags": tags})


async def test_create_is_idempotent_and_overwrites_the_value_of_an_existing_key(
    hw: Huawei,
) -> None:
    server = first(hw)
    tags = [{"key": "owner", "value": "ops.team_1"}, {"key": "成本", "value": ""}]
    answer = await tags_action(hw, server, "create", tags)
    assert (answer.status, answer.body) == (204, None)
    assert (await tags_action(hw, server, "create", tags)).status == 204
    assert (await tags_action(hw, server, "create", [{"key": "env", "value": "qa"}])).status == 204
    assert server.tags == {"env": "qa", "team": "b", "owner": "ops.team_1", "成本": ""}
    read = await hw.call("GET", f"/v1/{{pid}}/servers/{server.id}/tags")
    assert {(t["key"], t["value"]) for t in read.body["tags"]} == set(server.tags.items())
    assert hw.sim.requests(rate_key="huawei-ecs:tags")[0]["server_ids"] == [server.id]


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        ({"key": "k" * 37, "value": "v"}, "Ecs.0906"),
        ({"key": "", "value": "v"}, "Ecs.0906"),
        ({"key": "k", "value": "v" * 44}, "Ecs.0906"),
        ({"key": "k"}, "Ecs.0906"),
        ({"key": "a.b", "value": "v"}, "Ecs.0907"),
        ({"key": "k", "value": "a=b"}, "Ecs.0907"),
        ({"key": "k", "value": "with space"}, "Ecs.0907"),
    ],
)
async def test_create_rules_refuse_the_whole_call(
    hw: Huawei, tag: dict[str, str], code: str
) -> None:
    server = first(hw)
    before = dict(server.tags)
    answer = await tags_action(hw, server, "create", [{"key": "fine", "value": "ok"}, tag])
    assert (answer.status, answer.code) == (400, code)
    assert server.tags == before


async def test_at_most_ten_tags_and_no_duplicate_keys(hw: Huawei) -> None:
    server = first(hw)
    eight = [{"key": f"k{i}", "value": "v"} for i in range(8)]
    assert (await tags_action(hw, server, "create", eight)).status == 204
    assert len(server.tags) == 10
    over = await tags_action(hw, server, "create", [{"key": "eleventh", "value": "v"}])
    assert (over.status, over.code) == (400, "Ecs.0905")
    assert (await tags_action(hw, server, "create", [{"key": "k0", "value": "w"}])).status == 204
    dup = await tags_action(hw, server, "create", [{"key": "z", "value": "1"}] * 2)
    assert (dup.status, dup.code) == (400, "Ecs.0908")
    assert len(server.tags) == 10 and server.tags["k0"] == "w"


async def test_delete_is_idempotent_by_key_or_by_key_and_value(hw: Huawei) -> None:
    server = first(hw)
    wrong_value = await tags_action(hw, server, "delete", [{"key": "env", "value": "dev"}])
    assert wrong_value.status == 204 and server.tags["env"] == "prod"
    by_value = [{"key": "env", "value": "prod"}, {"key": "absent"}]
    assert (await tags_action(hw, server, "delete", by_value)).status == 204
    assert (await tags_action(hw, server, "delete", [{"key": "team", "value": ""}])).status == 204
    assert server.tags == {}
    assert (await tags_action(hw, server, "delete", [{"key": "env"}])).status == 204
    bad = await tags_action(hw, server, "Delete", [{"key": "env"}])
    assert (bad.status, bad.code) == (400, "Ecs.0005")


async def test_tag_calls_on_unknown_or_bms_servers_are_ecs_0614(hw: Huawei) -> None:
    bms = hw.sim.world.visible("bms")[0]
    answer = await tags_action(hw, bms, "create", [{"key": "a", "value": "b"}])
    assert (answer.status, answer.code) == (404, "Ecs.0614")
    assert bms.tags == {"env": "prod"}


async def test_the_sdk_cloudservers_paths_are_served_too(hw: Huawei) -> None:
    server = first(hw)
    path = f"/v1/{{pid}}/cloudservers/{server.id}/tags/action"
    body = {"action": "create", "tags": [{"key": "via", "value": "sdk"}]}
    assert (await hw.call("POST", path, body)).status == 204
    read = await hw.call("GET", f"/v1/{{pid}}/cloudservers/{server.id}/tags")
    assert {"key": "via", "value": "sdk"} in read.body["tags"]


async def test_project_tags_list_every_key_with_its_values(hw: Huawei) -> None:
    answer = await hw.call("GET", "/v1/{pid}/servers/tags")
    got = {t["key"]: sorted(t["values"]) for t in answer.body["tags"]}
    assert got == {"env": ["dev", "prod"], "team": ["a", "b"]}


async def query(hw: Huawei, **body: object) -> Answer:
    return await hw.call("POST", QUERY, body)


def names(answer: Answer) -> list[str]:
    return [r["resource_name"] for r in answer.body["resources"]]


async def test_filter_ands_tag_entries_ors_values_and_excludes_not_tags(hw: Huawei) -> None:
    prod = await query(hw, action="filter", tags=[{"key": "env", "values": ["prod"]}])
    assert names(prod) == ["ecs-00", "ecs-01", "ecs-02"] and prod.body["total_count"] == 3
    resource = prod.body["resources"][0]
    assert set(resource) == {"resource_id", "resource_detail", "tags", "resource_name"}
    assert resource["resource_detail"] is None
    assert {"key": "env", "value": "prod"} in resource["tags"]
    both = await query(
        hw,
        action="filter",
        tags=[{"key": "env", "values": ["prod", "dev"]}, {"key": "team", "values": ["a"]}],
    )
    assert names(both) == ["ecs-01", "ecs-03", "ecs-05", "ecs-07"]
    anyvalue = await query(hw, action="count", tags=[{"key": "team"}])
    assert anyvalue.body == {"total_count": 8}
    excluded = await query(hw, action="filter", not_tags=[{"key": "env", "values": ["dev"]}])
    assert names(excluded) == ["ecs-00", "ecs-01", "ecs-02"]
    bare = await query(hw, action="count", not_tags=["team"])
    assert bare.body == {"total_count": 0}
    by_name = await query(hw, action="filter", matches=[{"key": "resource_name", "value": "-0"}])
    assert by_name.body["total_count"] == 8
    one = await query(hw, action="filter", matches=[{"key": "resource_name", "value": "ecs-04"}])
    assert names(one) == ["ecs-04"]


async def test_paging_uses_string_offset_and_limit(hw: Huawei) -> None:
    pages = []
    for offset in ("0", "3", "6"):
        page = await query(hw, action="filter", offset=offset, limit="3")
        assert page.body["total_count"] == 8
        pages.extend(names(page))
    assert pages == [f"ecs-{i:02d}" for i in range(8)]
    default = await query(hw, action="filter")
    assert len(default.body["resources"]) == 8
    counted = await query(hw, action="count", limit="not-used", offset="-")
    assert counted.body == {"total_count": 8}


@pytest.mark.parametrize(
    "body",
    [
        {"action": "filter", "limit": 3},
        {"action": "filter", "limit": "1001"},
        {"action": "filter", "offset": "-1"},
        {"action": "list"},
        {"action": "filter", "tags": [{"key": "env"}, {"key": "env"}]},
        {"action": "filter", "tags": [{"key": "env", "values": ["a", "a"]}]},
        {"action": "filter", "matches": [{"key": "name", "value": "x"}]},
    ],
)
async def test_bad_queries_are_ecs_0005(hw: Huawei, body: dict[str, object]) -> None:
    answer = await hw.call("POST", QUERY, body)
    assert (answer.status, answer.code) == (400, "Ecs.0005")
