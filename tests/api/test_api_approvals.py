"""Approvals through the API, on SQLite and PostgreSQL, with the real drivers against the
embedded simulator: an operation beyond `[approvals]` (or a fire of a policy that requires it) is
planned and waits in `pending_approval` with nothing sent to the cloud, until a token other than
its creator's approves it; a rejection, or an approval after the window, ends it with nothing
sent. The simulator's request log is the witness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fleet.settings import ApprovalsSpec, Settings
from fleet.tokens import Role, TokenStore
from tests.api.conftest import Api, api_settings, serving

ENDPOINT = "ecs-sim"
ACTS = {"start", "stop", "reboot", "delete", "resize", "confirm_resize"}


def with_approvals(settings: Settings, **values: object) -> Settings:
    spec = ApprovalsSpec.model_validate({**settings.approvals.model_dump(), **values})
    return settings.model_copy(update={"approvals": spec})


@pytest.fixture
async def api(tmp_path: Path, db_url: str) -> AsyncIterator[Api]:
    settings = with_approvals(api_settings(tmp_path, db_url), max_servers=3)
    async with serving(settings) as running:
        _, token = await TokenStore(running.fleet.store.db).create(
            "operator-2", Role.OPERATOR, running.fleet.operations.clock.now()
        )
        running.tokens["operator2"] = token
        yield running


async def acted_on(api: Api, ids: list[str]) -> list[dict[str, object]]:
    """The simulator's record of every call that acted on one of `ids`."""
    async with api.client.session.get(f"{api.fleet.simulator_url}/_sim/requests") as resp:
        entries: list[dict[str, object]] = (await resp.json())["requests"]
    return [
        e
        for e in entries
        if e.get("action") in ACTS and set(map(str, e.get("server_ids") or [])) & set(ids)
    ]


async def running_ids(api: Api, n: int) -> list[str]:
    servers = await api.servers(ENDPOINT, status="running")
    assert len(servers) >= n
    return [str(s["id"]) for s in servers[:n]]


def stop(ids: list[str], **extra: object) -> dict[str, object]:
    return {"action": "stop", "targets": {"endpoints": [ENDPOINT], "ids": ids}, **extra}


async def pending(api: Api, body: dict[str, object], role: str = "operator") -> str:
    reply = await api.post("/v1/operations", body, role=role)
    assert reply.status == 202, reply.body
    op_id = str(reply.body["id"])
    await api.wait_state(op_id, "pending_approval")
    return op_id


async def test_beyond_the_threshold_it_waits_until_another_token_approves(api: Api) -> None:
    ids = await running_ids(api, 5)
    op_id = await pending(api, stop(ids))
    shown = (await api.get(f"/v1/operations/{op_id}")).body
    approval = shown["approval"]
    assert isinstance(approval, dict)
    assert approval["state"] == "pending"
    assert approval["reason"] == "acts on more than 3 servers"
    assert approval["expires_at"] > shown["planned_at"]  # type: ignore[operator]
    assert approval["decided_by"] is None
    assert shown["counts"]["pending"] == 5  # type: ignore[index]
    listed = await api.get("/v1/operations", params={"state": "pending_approval"})
    assert [o["id"] for o in listed.body["items"]] == [op_id]  # type: ignore[union-attr]
    assert await acted_on(api, ids) == []
    # the token that created it is refused, with the reason
    own = await api.post(f"/v1/operations/{op_id}/approve")
    assert own.status == 403, own.body
    assert "operator-t" in str(own.body["detail"]) and "another token" in str(own.body["detail"])
    assert (await api.post(f"/v1/operations/{op_id}/approve", role="viewer")).status == 403
    assert await acted_on(api, ids) == []
    approved = await api.post(
        f"/v1/operations/{op_id}/approve", {"note": "change 42"}, role="operator2"
    )
    assert approved.status == 200, approved.body
    decided = approved.body["approval"]
    assert isinstance(decided, dict)
    assert (decided["state"], decided["decided_by"], decided["note"]) == (
        "approved",
        "operator-2",
        "change 42",
    )
    assert decided["decided_at"] is not None
    done = await api.wait(op_id)
    assert done["state"] == "succeeded", done
    assert {str(s["id"]) for s in await api.servers(ENDPOINT, status="stopped")} >= set(ids)
    assert {a for e in await acted_on(api, ids) if (a := e["action"])} == {"stop"}
    again = await api.post(f"/v1/operations/{op_id}/approve", role="admin")
    assert again.status == 409 and "already approved by operator-2" in str(again.body["detail"])


async def test_within_the_threshold_it_runs_at_once(api: Api) -> None:
    ids = await running_ids(api, 3)
    reply = await api.post("/v1/operations", stop(ids))
    assert reply.status == 202, reply.body
    done = await api.wait(str(reply.body["id"]))
    assert done["state"] == "succeeded" and done["approval"] is None, done


async def test_a_rejection_ends_it_with_nothing_sent(api: Api) -> None:
    ids = await running_ids(api, 4)
    op_id = await pending(api, stop(ids))
    own = await api.post(f"/v1/operations/{op_id}/reject")
    assert own.status == 403 and "cancel it" in str(own.body["detail"]), own.body
    rejected = await api.post(f"/v1/operations/{op_id}/reject", {"note": "not now"}, role="admin")
    assert rejected.status == 200, rejected.body
    body = rejected.body
    assert body["state"] == "rejected", body
    assert body["counts"]["cancelled"] == 4, body  # type: ignore[index]
    assert body["approval"]["decided_by"] == "admin-t"  # type: ignore[index]
    assert body["finished_at"] is not None
    late = await api.post(f"/v1/operations/{op_id}/approve", role="admin")
    assert late.status == 409, late.body
    assert await acted_on(api, ids) == []
    assert {str(s["id"]) for s in await api.servers(ENDPOINT, status="running")} >= set(ids)


async def test_an_approval_after_the_window_finds_it_expired(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = with_approvals(api_settings(tmp_path, sqlite_url), max_servers=1)
    settings = with_approvals(settings, window_seconds=0.5)
    async with serving(settings) as api:
        ids = await running_ids(api, 2)
        op_id = await pending(api, stop(ids))
        await asyncio.sleep(0.6)
        late = await api.post(f"/v1/operations/{op_id}/approve", role="admin")
        assert late.status == 409 and "window ended" in str(late.body["detail"]), late.body
        shown = (await api.get(f"/v1/operations/{op_id}")).body
        assert shown["state"] == "expired", shown
        assert shown["approval"]["state"] == "expired"  # type: ignore[index]
        assert shown["counts"]["cancelled"] == 2  # type: ignore[index]
        assert await acted_on(api, ids) == []


async def test_an_admins_delete_beyond_the_delete_guard_needs_a_second_token(api: Api) -> None:
    ids = await running_ids(api, 2)  # 2 of 16 servers: beyond the delete guard's 5%
    body = {
        "action": "delete",
        "targets": {"endpoints": [ENDPOINT], "ids": ids},
        "guard": {"max_servers": 2},
    }
    op_id = await pending(api, body, role="admin")
    shown = (await api.get(f"/v1/operations/{op_id}")).body
    assert "a delete beyond the delete guard (10 servers, 5% of an endpoint)" in str(
        shown["approval"]["reason"]  # type: ignore[index]
    )
    assert await acted_on(api, ids) == []
    assert (await api.post(f"/v1/operations/{op_id}/approve", role="admin")).status == 403
    assert (await api.post(f"/v1/operations/{op_id}/approve")).status == 200
    done = await api.wait(op_id)
    assert done["state"] == "succeeded", done
    assert {e["action"] for e in await acted_on(api, ids)} == {"delete"}


async def test_a_policy_that_requires_approval_fires_a_pending_operation(api: Api) -> None:
    ids = await running_ids(api, 1)
    policy = {
        "name": "one-stop",
        "cron": "0 20 * * *",
        "action": "stop",
        "targets": {"endpoints": [ENDPOINT], "ids": ids},
        "require_approval": True,
    }
    created = await api.call("POST", "/v1/policies", json=policy, role="admin")
    assert created.status == 201, created.body
    assert created.body["spec"]["require_approval"] is True  # type: ignore[index]
    run = await api.post("/v1/policies/one-stop/run")
    assert run.status == 200, run.body
    fire = run.body["fire"]
    assert isinstance(fire, dict)
    op_id = str(fire["operation_id"])
    await api.wait_state(op_id, "pending_approval")
    shown = (await api.get(f"/v1/operations/{op_id}")).body
    assert shown["approval"]["reason"] == "policy one-stop requires approval of its fires"  # type: ignore[index]
    fires = (await api.get("/v1/policies/one-stop/fires")).body["items"]
    assert fires[0]["outcome"] == "pending_approval", fires  # type: ignore[index]
    reason = "approval: policy one-stop requires approval of its fires"
    assert fires[0]["outcome_reason"] == reason, fires  # type: ignore[index]
    assert await acted_on(api, ids) == []
    # run by hand, the fire's operation is the operator's: another token approves it
    assert (await api.post(f"/v1/operations/{op_id}/approve")).status == 403
    assert (await api.post(f"/v1/operations/{op_id}/approve", role="admin")).status == 200
    assert (await api.wait(op_id))["state"] == "succeeded"
    assert [e["action"] for e in await acted_on(api, ids)] == ["stop"]
