"""A resize to a flavor the targeted clouds do not list: 422 naming `params.flavor`, nothing
written; the real drivers ask the embedded simulator (config/demo.toml endpoints), and a flavor
list that cannot be fetched does not block the request."""

from __future__ import annotations

import pytest

from fleet.engine import admission
from tests.api.conftest import Api


def resize(flavor: str, *endpoints: str, **targets: object) -> dict[str, object]:
    return {
        "action": "resize",
        "params": {"flavor": flavor},
        "targets": {"endpoints": list(endpoints), "name": "*", **targets},
        "dry_run": True,
    }


async def sim_post(api: Api, path: str, body: object) -> None:
    async with api.client.session.post(f"{api.fleet.simulator_url}{path}", json=body) as resp:
        assert resp.status == 201, await resp.text()


async def flavor_calls(api: Api) -> list[dict[str, object]]:
    async with api.client.session.get(f"{api.fleet.simulator_url}/_sim/requests") as resp:
        entries: list[dict[str, object]] = (await resp.json())["requests"]
    return [e for e in entries if str(e["rate_key"]).endswith(":flavors")]


async def assert_refused(api: Api, body: dict[str, object], *words: str) -> None:
    reply = await api.post("/v1/operations", body)
    assert reply.status == 422, reply.body
    assert reply.content_type == "application/problem+json"
    assert reply.body["field"] == "params.flavor", reply.body
    for word in words:
        assert word in str(reply.body["detail"]), reply.body
    assert await api.operation_count() == 0


async def test_unknown_flavor_on_a_named_huawei_endpoint(api: Api) -> None:
    await assert_refused(api, resize("huge.9", "ecs-sim"), "huge.9", "ecs-sim")
    # a BMS flavor is no ECS resize target, although the native list shows it
    await assert_refused(api, resize("physical.s4.large", "ecs-sim"), "physical.s4.large")
    ok = await api.post("/v1/operations", resize("s6.large.2", "ecs-sim"))
    assert ok.status == 200, ok.body
    assert await api.operation_count() == 1
    calls = await flavor_calls(api)
    assert calls and {c["rate_key"] for c in calls} == {"huawei-nova:flavors"}
    assert len(calls) == 1  # cached: three requests, one list


async def test_openstack_flavors_by_id_or_by_name(api: Api) -> None:
    await assert_refused(api, resize("s6.large.2", "easystack-sim"), "easystack-sim")
    for flavor in ("214", "ecs.c2.large"):  # the same flavor, by id and by name
        ok = await api.post("/v1/operations", resize(flavor, "easystack-sim"))
        assert ok.status == 200, ok.body
    assert {c["rate_key"] for c in await flavor_calls(api)} == {"openstack:flavors"}


async def test_a_resize_by_flavor_name_sends_the_id_and_ends_there(api: Api) -> None:
    """EasyStack takes `flavorRef` ids only: a resize to `m1.large` is sent as `3`, the server
    ends with flavor `3`, and a server already there is skipped as already that flavor."""
    running = await api.servers("easystack-sim", status="running")
    server = next(s for s in running if s["flavor"] != "3")
    body = resize("m1.large", "easystack-sim", ids=[server["id"]])
    body["dry_run"] = False
    created = await api.post("/v1/operations", body)
    assert created.status == 202, created.body
    done = await api.wait(str(created.body["id"]))
    assert done["state"] == "succeeded", done
    assert done["counts"]["succeeded"] == 1, done  # type: ignore[index]
    [after] = [s for s in await api.servers("easystack-sim") if s["id"] == server["id"]]
    assert after["flavor"] == "3", after
    again = await api.post("/v1/operations", body | {"dry_run": True})
    assert again.body["plan"]["skipped_by_reason"] == {"already flavor 3": 1}, again.body  # type: ignore[index]


async def test_every_named_endpoint_must_list_it(api: Api) -> None:
    await assert_refused(api, resize("s6.large.2", "ecs-sim", "easystack-sim"), "easystack-sim")


async def test_no_endpoint_named_checks_every_endpoint_that_can_resize(api: Api) -> None:
    await assert_refused(api, resize("huge.9"), "huge.9", "ecs-sim", "easystack-sim")
    refused = await api.post("/v1/operations", resize("huge.9"))
    assert "bms-sim" not in str(refused.body["detail"])  # BMS cannot resize: not asked
    for flavor in ("s6.large.2", "214"):  # known on one of them: planning sorts the servers
        ok = await api.post("/v1/operations", resize(flavor))
        assert ok.status == 200, ok.body


async def test_a_flavor_list_that_cannot_be_fetched_does_not_block(api: Api) -> None:
    await sim_post(
        api,
        "/_sim/faults",
        {"kind": "error_burst", "match": "*:flavors", "count": 0, "status": 500},
    )
    for body in (resize("huge.9", "ecs-sim"), resize("huge.9")):
        reply = await api.post("/v1/operations", body)
        assert reply.status == 200, reply.body
    assert await api.operation_count() == 2
    assert await flavor_calls(api)  # it was asked, and answered with errors


async def test_a_flavor_list_that_does_not_answer_in_time_does_not_block(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admission, "FLAVOR_CHECK_TIMEOUT", 0.3)
    await sim_post(
        api, "/_sim/faults", {"kind": "timeout", "match": "openstack:flavors", "seconds": 5}
    )
    reply = await api.post("/v1/operations", resize("nothing.here", "easystack-sim"))
    assert reply.status == 200, reply.body
    # the fault was for one call: the next check fetches, and refuses
    await assert_refused_after(api, resize("nothing.here", "easystack-sim"))


async def assert_refused_after(api: Api, body: dict[str, object]) -> None:
    before = await api.operation_count()
    reply = await api.post("/v1/operations", body)
    assert reply.status == 422 and reply.body["field"] == "params.flavor", reply.body
    assert await api.operation_count() == before


async def test_flavors_are_listed_for_an_endpoint(api: Api) -> None:
    reply = await api.get("/v1/endpoints/easystack-sim/flavors")
    assert reply.status == 200, reply.body
    assert {"id": "3", "name": "m1.large"} in reply.body["items"]  # type: ignore[operator]
    assert (await api.get("/v1/endpoints/nowhere/flavors")).status == 404
    assert (await api.get("/v1/endpoints/easystack-sim/flavors", role=None)).status == 401
