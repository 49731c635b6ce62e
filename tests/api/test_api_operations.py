"""Operations through the REST API, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fleet.api.context import ApiConfig
from tests.api.conftest import Api, api_settings, serving


async def _running_ids(api: Api, endpoint: str, n: int) -> list[str]:
    servers = await api.servers(endpoint, status="running")
    assert len(servers) >= n
    return [str(s["id"]) for s in servers[:n]]


async def test_create_answers_202_with_location_and_runs_to_the_end(api_db: Api) -> None:
    ids = await _running_ids(api_db, "ecs-sim", 3)
    body = {
        "action": "stop",
        "params": {"type": "SOFT"},
        "targets": {"endpoints": ["ecs-sim"], "ids": ids},
        "reason": "test stop",
    }
    reply = await api_db.post("/v1/operations", body)
    assert reply.status == 202, reply.body
    op_id = reply.body["id"]
    assert reply.headers["Location"] == f"/v1/operations/{op_id}"
    assert reply.body["created_by"] == "operator-t"
    assert reply.body["action"] == "stop"
    assert reply.body["targets"] == {"endpoints": ["ecs-sim"], "ids": ids}

    done = await api_db.wait(str(op_id))
    assert done["state"] == "succeeded"
    assert done["counts"]["succeeded"] == 3
    assert done["progress"] == {"total": 3, "done": 3, "active": 0, "percent": 100.0}
    assert done["eta_seconds"] == 0.0
    assert done["planned_at"] is not None and done["finished_at"] is not None
    assert done["reason"] == "test stop"

    subjobs = await api_db.get(f"/v1/operations/{op_id}/subjobs")
    assert subjobs.status == 200
    items = subjobs.body["items"]
    assert isinstance(items, list)
    assert sorted(s["server_id"] for s in items) == sorted(ids)
    assert {s["state"] for s in items} == {"succeeded"}
    assert all(s["endpoint"] == "ecs-sim" and s["cloud_job_id"] for s in items)
    stopped = await api_db.servers("ecs-sim", status="stopped")
    assert set(ids) <= {s["id"] for s in stopped}


async def test_dry_run_answers_200_with_the_plan_and_acts_on_nothing(api_db: Api) -> None:
    body = {
        "action": "reboot",
        "targets": {"tags_all": {"role": "web"}},
        "strategy": {"waves": [1, "10%", "100%"], "max_errors": "10%"},
        "dry_run": True,
    }
    reply = await api_db.post("/v1/operations", body)
    assert reply.status == 200, reply.body
    op, plan = reply.body["operation"], reply.body["plan"]
    assert isinstance(op, dict) and isinstance(plan, dict)
    assert op["state"] == "planned" and op["dry_run"] is True
    assert plan["targets"] >= 1
    assert plan["eta_seconds"] > 0
    assert plan["waves"][0] == 1
    assert sum(plan["waves"]) == plan["targets"] or plan["wave_count"] > len(plan["waves"])
    keys = {k["rate_key"] for k in plan["rate_keys"]}
    assert keys <= {"ecs-sim:action", "bms-sim:action", "easystack-sim:action"} and keys
    assert sum(k["servers"] for k in plan["rate_keys"]) == plan["targets"]
    # nothing was sent: the would-be sub-jobs stay pending
    subjobs = await api_db.get(f"/v1/operations/{op['id']}/subjobs", params={"state": "pending"})
    assert len(subjobs.body["items"]) == plan["targets"]
    await asyncio.sleep(0.3)
    again = await api_db.get(f"/v1/operations/{op['id']}")
    assert again.body["state"] == "planned"
    assert again.body["counts"]["succeeded"] == 0


async def test_list_filters_by_state_and_pages_with_a_cursor(api_db: Api) -> None:
    ids = await _running_ids(api_db, "easystack-sim", 1)
    real = await api_db.post(
        "/v1/operations",
        {"action": "reboot", "targets": {"ids": ids, "endpoints": ["easystack-sim"]}},
    )
    await api_db.wait(str(real.body["id"]))
    dry_ids = []
    for _ in range(3):
        dry = await api_db.post(
            "/v1/operations",
            {"action": "start", "targets": {"endpoints": ["bms-sim"]}, "dry_run": True},
        )
        assert dry.status == 200
        dry_ids.append(dry.body["operation"]["id"])

    planned = await api_db.get("/v1/operations", params={"state": "planned", "limit": "2"})
    assert planned.status == 200
    first = [o["id"] for o in planned.body["items"]]
    assert first == list(reversed(dry_ids))[:2]
    cursor = planned.body["next_cursor"]
    assert cursor
    rest = await api_db.get("/v1/operations", params={"state": "planned", "cursor": cursor})
    assert [o["id"] for o in rest.body["items"]] == [dry_ids[0]]
    assert rest.body["next_cursor"] is None

    succeeded = await api_db.get("/v1/operations", params={"state": "succeeded"})
    assert [o["id"] for o in succeeded.body["items"]] == [real.body["id"]]
    everything = await api_db.get("/v1/operations", params={"limit": "3"})
    more = await api_db.get("/v1/operations", params={"cursor": everything.body["next_cursor"]})
    seen = [o["id"] for o in everything.body["items"] + more.body["items"]]
    assert sorted(seen) == sorted([*dry_ids, real.body["id"]])


async def test_pause_resume_cancel_record_the_token_name(api: Api) -> None:
    ids = await _running_ids(api, "easystack-sim", 6)
    body = {
        "action": "reboot",
        "targets": {"endpoints": ["easystack-sim"], "ids": ids},
        "strategy": {"waves": [1, 1, "100%"], "pause_after_wave": True},
    }
    created = await api.post("/v1/operations", body)
    op_id = created.body["id"]
    await api.wait_state(str(op_id), "paused")
    resumed = await api.post(f"/v1/operations/{op_id}/resume")
    assert resumed.status == 200 and resumed.body["paused"] is False
    paused = await api.post(f"/v1/operations/{op_id}/pause")
    assert paused.status == 200 and paused.body["paused"] is True
    cancelled = await api.post(f"/v1/operations/{op_id}/cancel", role="admin")
    assert cancelled.status == 200
    assert cancelled.body["cancelled_by"] == "admin-t"
    final = await api.wait(str(op_id))
    assert final["state"] == "cancelled"
    assert final["counts"]["cancelled"] >= 1
    late = await api.post(f"/v1/operations/{op_id}/pause")
    assert late.status == 409
    assert late.content_type == "application/problem+json"
    events = await api.fleet.operations.events(str(op_id))
    who = [(e.event, e.worker) for e in events if e.event.startswith("operation.")]
    assert ("operation.resumed", "operator-t") in who
    assert ("operation.paused", "operator-t") in who
    assert ("operation.cancelled", "admin-t") in who


async def test_retry_failed_requeues_failures(api: Api) -> None:
    ids = await _running_ids(api, "ecs-sim", 2)
    sim = api.fleet.simulator_url
    assert sim is not None
    async with api.client.session.post(
        f"{sim}/_sim/faults", json={"kind": "job_fail", "server_ids": [ids[0]]}
    ) as resp:
        assert resp.status == 201
    created = await api.post(
        "/v1/operations", {"action": "stop", "targets": {"endpoints": ["ecs-sim"], "ids": ids}}
    )
    final = await api.wait(str(created.body["id"]))
    assert final["state"] == "completed_with_failures"
    failed = await api.get(f"/v1/operations/{final['id']}/subjobs", params={"state": "failed"})
    [bad] = failed.body["items"]
    assert bad["server_id"] == ids[0]
    assert bad["error_code"] and bad["error_message"]
    retried = await api.post(f"/v1/operations/{final['id']}/retry-failed")
    assert retried.status == 200
    assert retried.body["requeued"] == 1
    again = await api.wait(str(final["id"]))
    assert again["state"] == "succeeded"


async def test_unknown_operation_is_a_404_problem(api: Api) -> None:
    for method, path in (
        ("GET", "/v1/operations/nope"),
        ("GET", "/v1/operations/nope/subjobs"),
        ("GET", "/v1/operations/nope/events"),
        ("POST", "/v1/operations/nope/cancel"),
        ("POST", "/v1/operations/nope/retry-failed"),
    ):
        reply = await api.call(method, path)
        assert reply.status == 404, (method, path, reply.body)
        assert reply.content_type == "application/problem+json"
        assert reply.body["status"] == 404


async def test_a_dry_run_that_outlasts_the_wait_answers_without_a_plan(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with serving(api_settings(tmp_path, sqlite_url), ApiConfig(dry_run_wait=0.0)) as api:
        body = {"action": "start", "targets": {"endpoints": ["bms-sim"]}, "dry_run": True}
        reply = await api.post("/v1/operations", body)
        assert reply.status == 200
        assert reply.body["plan"] is None
        assert reply.body["operation"]["state"] == "planning"
        op_id = str(reply.body["operation"]["id"])
        assert (await api.wait(op_id))["state"] == "planned"
