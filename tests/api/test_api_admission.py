"""One door: a policy (at create, update and fire) is admitted by the same function as
`POST /v1/operations`, so no policy can do what the operations API refuses; a delete is held to
the configured delete guard unless an admin gives a guard of their own. On both databases, with
the real drivers against the embedded simulator (config/demo.toml endpoints)."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api


def policy(
    name: str, action: str, targets: dict[str, object], **extra: object
) -> dict[str, object]:
    return {"name": name, "cron": "0 20 * * *", "timezone": "UTC", "action": action,
            "targets": targets, **extra}  # fmt: skip


def operation(action: str, targets: dict[str, object], **extra: object) -> dict[str, object]:
    return {"action": action, "targets": targets, "dry_run": True, **extra}


async def policy_count(api: Api) -> int:
    reply = await api.get("/v1/policies")
    assert reply.status == 200, reply.body
    return len(reply.body["items"])  # type: ignore[arg-type,index]


# A create on ecs-sim as config/demo.toml's simulated cloud (seed 7) takes it.
CREATE: dict[str, object] = {
    "count": 2, "name": "web-{n}", "flavor": "s6.small.1",
    "image": "1136a031-5993-4f22-b1ca-66dc9621e864",
    "network": "65a3cef7-97e1-4f47-aa4b-28bf37632623",
    "vpc": "3c5ebb0c-03f4-4df8-a86f-f7720061e177",
}  # fmt: skip

# (action, params, targets, the field both doors name)
REFUSED = [
    pytest.param("resize", {"flavor": "xxl"}, {"endpoints": ["ecs-sim"], "name": "*"},
                 "params.flavor", id="unknown-flavor"),
    pytest.param("stop", {}, {}, "targets", id="empty-selector"),
    pytest.param("resize", {"flavor": "physical.s3.large"}, {"endpoints": ["bms-sim"]},
                 "targets.endpoints[0]", id="resize-on-bms"),
    pytest.param("stop", {"type": "HARD"}, {"endpoints": ["easystack-sim"]},
                 "params.type", id="hard-stop-on-nova"),
    pytest.param("create", {**CREATE, "flavor": "xxl"}, {"endpoints": ["ecs-sim"]},
                 "params.flavor", id="create-unknown-flavor"),
    pytest.param("create", {k: v for k, v in CREATE.items() if k != "vpc"},
                 {"endpoints": ["ecs-sim"]}, "params.vpc", id="create-without-vpc"),
    pytest.param("create", {**CREATE, "admin_password": "hunter2"}, {"endpoints": ["ecs-sim"]},
                 "params.admin_password", id="create-literal-password"),
    pytest.param("create", {**CREATE, "count": 501}, {"endpoints": ["ecs-sim"]},
                 "params.count", id="create-above-the-ceiling"),
    pytest.param("create", CREATE, {"tags_all": {"env": "dev"}},
                 "targets.endpoints", id="create-without-endpoints"),
]  # fmt: skip


@pytest.mark.parametrize(("action", "params", "targets", "field"), REFUSED)
async def test_a_policy_is_refused_where_an_operation_is(
    api_db: Api,
    action: str,
    params: dict[str, object],
    targets: dict[str, object],
    field: str,
) -> None:
    api = api_db
    op = await api.post("/v1/operations", operation(action, targets, params=params))
    assert op.status == 422 and op.body["field"] == field, op.body
    body = policy("p", action, targets, params=params)
    created = await api.call("POST", "/v1/policies", json=body, role="admin")
    assert created.status == 422 and created.body["field"] == field, created.body
    assert await policy_count(api) == 0 and await api.operation_count() == 0
    # and an update cannot bring it in either
    good = policy("p", "stop", {"endpoints": ["ecs-sim"], "tags_all": {"env": "dev"}})
    assert (await api.call("POST", "/v1/policies", json=good, role="admin")).status == 201
    put = await api.call("PUT", "/v1/policies/p", json=body, role="admin")
    assert put.status == 422 and put.body["field"] == field, put.body


async def test_a_delete_is_held_to_the_delete_guard_unless_an_admin_lifts_it(api_db: Api) -> None:
    api = api_db
    body = operation("delete", {"endpoints": ["ecs-sim"]})
    body["dry_run"] = False
    body["strategy"] = {"max_in_flight": 1}
    # an operator cannot loosen it with a guard of their own
    loosened = await api.post("/v1/operations", body | {"guard": {"max_servers": 500}})
    assert loosened.status == 202, loosened.body
    guard = loosened.body["guard"]
    assert guard == {"max_servers": 10, "max_percent": "5%"}, guard
    done = await api.wait(str(loosened.body["id"]))
    assert done["state"] == "refused", done
    assert "blast radius" in str(done["refused_reason"]) or "guard" in str(done["refused_reason"])
    # an admin's explicit guard replaces it (the endpoints' configured limits still apply)
    admin = await api.call(
        "POST", "/v1/operations", json=body | {"guard": {"max_servers": 3}, "dry_run": True},
        role="admin",
    )  # fmt: skip
    assert admin.status == 200, admin.body
    assert admin.body["operation"]["guard"] == {"max_servers": 3, "max_percent": None}  # type: ignore[index]


async def test_an_operation_that_matches_no_server_is_refused(api_db: Api) -> None:
    api = api_db
    targets = {"tags_all": {"env": "nope"}}
    dry = await api.post("/v1/operations", operation("reboot", targets))
    assert dry.status == 200, dry.body
    assert dry.body["operation"]["state"] == "refused", dry.body  # type: ignore[index]
    assert dry.body["plan"]["refused_reason"] == "no server matched the selector", dry.body  # type: ignore[index]
    real = await api.post("/v1/operations", operation("reboot", targets, dry_run=False))
    assert real.status == 202, real.body
    done = await api.wait(str(real.body["id"]))
    assert done["state"] == "refused", done
    assert done["refused_reason"] == "no server matched the selector", done


async def test_a_fire_shows_what_its_operation_did(api_db: Api) -> None:
    api = api_db
    body = policy("dev-stop", "stop", {"endpoints": ["ecs-sim"], "tags_all": {"env": "dev"}})
    assert (await api.call("POST", "/v1/policies", json=body, role="admin")).status == 201
    run = await api.post("/v1/policies/dev-stop/run")
    assert run.status == 200, run.body
    fire = run.body["fire"]
    assert fire["status"] == "fired" and fire["outcome"] in ("running", "succeeded"), fire  # type: ignore[index]
    await api.wait(str(fire["operation_id"]))  # type: ignore[index]
    shown = await api.get("/v1/policies/dev-stop")
    assert shown.body["last_fire"]["outcome"] == "succeeded", shown.body  # type: ignore[index]
    listed = await api.get("/v1/policies/dev-stop/fires")
    assert listed.body["items"][0]["outcome"] == "succeeded", listed.body  # type: ignore[index]


async def test_a_create_dry_run_shows_the_quota_the_cloud_reports(api_db: Api) -> None:
    api = api_db
    body = operation("create", {"endpoints": ["ecs-sim"]}, params=CREATE)
    dry = await api.post("/v1/operations", body)
    assert dry.status == 200, dry.body
    quota = await api.fleet.drivers["ecs-sim"].quota()
    assert quota is not None
    assert dry.body["quota"] == [  # type: ignore[index]
        {"endpoint": "ecs-sim", "used": quota.used, "limit": quota.limit, "room": quota.room,
         "requested": 2}
    ]  # fmt: skip
    stop = await api.post("/v1/operations", operation("stop", {"endpoints": ["ecs-sim"]}))
    assert stop.status == 200 and stop.body["quota"] == [], stop.body  # type: ignore[index]
