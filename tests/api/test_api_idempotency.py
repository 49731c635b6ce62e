"""`Idempotency-Key`: the same request returns the same operation; a different one is refused."""

from __future__ import annotations

import asyncio

from tests.api.conftest import Api

BODY = {"action": "start", "targets": {"endpoints": ["bms-sim"], "statuses": ["stopped"]}}


async def test_same_key_same_request_returns_the_same_operation(api_db: Api) -> None:
    key = {"Idempotency-Key": "nightly-start-2026-11-24"}
    first = await api_db.post("/v1/operations", BODY, headers=key)
    assert first.status == 202
    assert "Idempotent-Replayed" not in first.headers
    second = await api_db.post("/v1/operations", BODY, headers=key, role="admin")
    assert second.status == 202
    assert second.body["id"] == first.body["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Location"] == first.headers["Location"]
    assert second.body["created_by"] == "operator-t"  # the first caller, not the replayer
    assert second.body["idempotency_key"] == "nightly-start-2026-11-24"
    assert await api_db.operation_count() == 1
    await api_db.wait(str(first.body["id"]))
    third = await api_db.post("/v1/operations", BODY, headers=key)
    assert third.body["id"] == first.body["id"] and third.body["state"] == "succeeded"
    assert await api_db.operation_count() == 1


async def test_same_key_different_request_is_422_and_writes_nothing(api_db: Api) -> None:
    key = {"Idempotency-Key": "k-1"}
    assert (await api_db.post("/v1/operations", BODY, headers=key)).status == 202
    other = {**BODY, "action": "stop"}
    reply = await api_db.post("/v1/operations", other, headers=key)
    assert reply.status == 422
    assert reply.body["field"] == "Idempotency-Key"
    assert await api_db.operation_count() == 1


async def test_concurrent_requests_with_one_key_create_one_operation(api: Api) -> None:
    key = {"Idempotency-Key": "burst"}
    replies = await asyncio.gather(
        *(api.post("/v1/operations", BODY, headers=key) for _ in range(5))
    )
    assert {r.status for r in replies} == {202}
    assert len({r.body["id"] for r in replies}) == 1
    assert await api.operation_count() == 1


async def test_dry_run_replay_returns_the_same_plan(api: Api) -> None:
    key = {"Idempotency-Key": "plan-1"}
    body = {**BODY, "dry_run": True}
    first = await api.post("/v1/operations", body, headers=key)
    second = await api.post("/v1/operations", body, headers=key)
    assert first.status == second.status == 200
    assert first.body["operation"]["id"] == second.body["operation"]["id"]
    assert first.body["plan"] == second.body["plan"]
