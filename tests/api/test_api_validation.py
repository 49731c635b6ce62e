"""Bad input: a 4xx problem naming the field, and nothing written."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import Api

GOOD = {"action": "stop", "targets": {"endpoints": ["ecs-sim"], "tags_all": {"env": "dev"}}}


def _with(**changes: object) -> dict[str, object]:
    body = json.loads(json.dumps(GOOD))
    for dotted, value in changes.items():
        node = body
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return body


BAD_BODIES = [
    (_with(bogus=1), "bogus"),
    (_with(targets__bogus=1), "targets.bogus"),
    (_with(params__bogus=True), "params.bogus"),
    (_with(strategy__bogus=1), "strategy.bogus"),
    (_with(action="explode"), "action"),
    (_with(action=3), "action"),
    (_with(targets__endpoints=["ecs-sim", "nowhere"]), "targets.endpoints[1]"),
    (_with(targets__endpoints="ecs-sim"), "targets.endpoints"),
    (_with(targets__ids=[]), "targets.ids"),
    (_with(targets__ids=[""]), "targets.ids"),
    (_with(targets__ids=[1, 2]), "targets.ids[0]"),
    (_with(targets__statuses=["asleep"]), "targets.statuses[0]"),
    (_with(targets__tags_all={"env": 1}), "targets.tags_all.env"),
    (_with(targets__exclude_tag="=x"), "targets.exclude_tag"),
    (_with(targets__tags_all={"k" * 256: "x"}), "targets.tags_all"),
    (_with(targets__tags_all={"env": "v" * 256}), "targets.tags_all"),
    (_with(targets__tags_any={"k": ["v" * 256]}), "targets.tags_any"),
    (_with(targets__tags_none={"k" * 128: []}), "targets.tags_none"),
    (_with(targets__exclude_tag="k=" + "v" * 256), "targets.exclude_tag"),
    ({"action": "stop", "targets": {}}, "targets"),
    ({"action": "stop", "targets": {"ids": [], "tags_all": {}}}, "targets"),
    ({"action": "stop"}, "targets"),
    (_with(params__type="GENTLE"), "params.type"),
    (_with(params__live="yes"), "params.live"),
    ({**GOOD, "action": "resize"}, "params.flavor"),
    ({**GOOD, "action": "tag_add"}, "params.tags"),
    (_with(strategy__max_in_flight="5"), "strategy.max_in_flight"),
    (_with(strategy__max_in_flight=0), "strategy.max_in_flight"),
    (_with(strategy__max_errors="lots"), "strategy.max_errors"),
    (_with(strategy__max_errors="150%"), "strategy.max_errors"),
    (_with(strategy__waves=[1, "0%"]), "strategy.waves[1]"),
    (_with(strategy__waves="1,2"), "strategy.waves"),
    (_with(guard__max_servers=-1), "guard.max_servers"),
    (_with(guard__max_percent=101), "guard.max_percent"),
    (_with(dry_run="yes"), "dry_run"),
    (_with(reason="x" * 1001), "reason"),
    (
        {"action": "resize", "params": {"flavor": "big"}, "targets": {"endpoints": ["bms-sim"]}},
        "targets.endpoints[0]",
    ),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
async def test_bad_body_is_422_naming_the_field_and_writes_nothing(
    api: Api, body: object, field: str
) -> None:
    reply = await api.post("/v1/operations", body)
    assert reply.status == 422, reply.body
    assert reply.content_type == "application/problem+json"
    assert reply.body["field"] == field, reply.body
    assert field in str(reply.body["detail"])
    assert reply.body["errors"] and reply.body["errors"][0]["field"] == field
    assert not str(reply.body["errors"][0]["message"]).startswith(f"{field}:")
    assert await api.operation_count() == 0


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"", "application/json", 400),
        (b"[1, 2]", "application/json", 422),
        (b'"text"', "application/json", 422),
        (json.dumps(GOOD).encode(), "text/plain", 415),
        (b"{" + b'"reason": "' + b"x" * 400_000 + b'"}', "application/json", 413),
    ],
)
async def test_malformed_or_oversized_bodies(
    api: Api, data: bytes, content_type: str, status: int
) -> None:
    reply = await api.call(
        "POST", "/v1/operations", role="operator", data=data, headers={"Content-Type": content_type}
    )
    assert reply.status == status, reply.body
    assert reply.content_type == "application/problem+json"
    assert reply.body["field"] == "body"
    assert await api.operation_count() == 0


async def test_bad_idempotency_key_is_named(api: Api) -> None:
    reply = await api.post("/v1/operations", GOOD, headers={"Idempotency-Key": "k" * 300})
    assert reply.status == 422 and reply.body["field"] == "Idempotency-Key"
    assert await api.operation_count() == 0


async def test_unknown_flavor_is_refused_when_the_driver_lists_flavors(api: Api) -> None:
    driver = api.fleet.drivers["ecs-sim"]

    async def flavors() -> frozenset[str]:
        return frozenset({"s6.large.2"})

    object.__setattr__(driver, "flavors", flavors)
    body = {
        "action": "resize",
        "params": {"flavor": "huge.9"},
        "targets": {"endpoints": ["ecs-sim"], "name": "ecs-*"},
    }
    reply = await api.post("/v1/operations", body)
    assert reply.status == 422 and reply.body["field"] == "params.flavor"
    assert "huge.9" in str(reply.body["detail"])
    body["params"] = {"flavor": "s6.large.2"}
    body["dry_run"] = True
    assert (await api.post("/v1/operations", body)).status == 200


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/operations", {"limit": "0"}, "limit"),
        ("/v1/operations", {"limit": "many"}, "limit"),
        ("/v1/operations", {"state": "sleepy"}, "state"),
        ("/v1/operations", {"cursor": "%%%"}, "cursor"),
        ("/v1/operations", {"colour": "red"}, "colour"),
        ("/v1/servers", {"endpoint": "nowhere"}, "endpoint[0]"),
        ("/v1/servers", {"tag": "novalue"}, "tag[0]"),
        ("/v1/servers", {"status": "asleep"}, "status[0]"),
        ("/v1/servers", {"cursor": "-1"}, "cursor"),
        ("/v1/servers", {"tag": "k" * 256 + "=x"}, "tag"),
        ("/v1/servers", {"tag": "k=" + "v" * 256, "endpoint": "ecs-sim"}, "tag"),
        ("/v1/servers", {"tag_any": "k" * 256}, "tag_any"),
        ("/v1/servers", {"tag_none": "k=" + "v" * 256}, "tag_none"),
    ],
)
async def test_bad_query_is_422_naming_the_parameter(
    api: Api, path: str, params: dict[str, str], field: str
) -> None:
    reply = await api.get(path, params=params)
    assert reply.status == 422, reply.body
    assert reply.body["field"] == field, reply.body


async def test_bad_subjob_cursor_and_state(api: Api) -> None:
    made = await api.post(
        "/v1/operations", {**GOOD, "dry_run": True, "targets": {"endpoints": ["bms-sim"]}}
    )
    op_id = made.body["operation"]["id"]
    for params, field in (({"cursor": "x"}, "cursor"), ({"state": "done"}, "state")):
        reply = await api.get(f"/v1/operations/{op_id}/subjobs", params=params)
        assert reply.status == 422 and reply.body["field"] == field


async def test_the_longest_tag_filter_any_cloud_takes_is_answered(api: Api) -> None:
    """127-character keys and 255-character values reach the clouds (and match nothing)."""
    for endpoint in ("ecs-sim", "bms-sim", "easystack-sim"):
        params = {"tag": "k" * 127 + "=" + "v" * 255, "endpoint": endpoint}
        reply = await api.get("/v1/servers", params=params)
        assert reply.status == 200 and reply.body["items"] == [], (endpoint, reply.body)
