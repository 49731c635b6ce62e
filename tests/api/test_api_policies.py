"""`/v1/policies`: CRUD by admins, run now by operators, preview and fires for viewers; errors
name the field (422), unknown ids are 404, file policies cannot be edited (409), and a disabled
policy engine answers 503."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.api.conftest import Api, api_settings, serving

BODY: dict[str, object] = {
    "name": "nightly-stop",
    "description": "web servers off at night",
    "cron": "0 20 * * mon-fri",
    "timezone": "Europe/Berlin",
    "action": "stop",
    "params": {"type": "SOFT"},
    "targets": {"endpoints": ["ecs-sim"]},
    "skip_dates": ["2026-12-24"],
    "dry_run_only": True,
    "misfire_grace": "30m",
}

FILE_POLICY = """
[[policies]]
name = "from-file"
cron = "0 3 * * *"
action = "reboot"
targets = { endpoints = ["bms-sim"] }
dry_run_only = true
"""


async def _create(api: Api, body: dict[str, object] | None = None) -> dict[str, object]:
    reply = await api.call("POST", "/v1/policies", json=body or BODY, role="admin")
    assert reply.status == 201, reply.body
    return reply.body


async def test_crud_round_trip(api: Api) -> None:
    made = await _create(api)
    assert made["id"] == "nightly-stop" and made["source"] == "api" and made["version"] == 1
    assert made["created_by"] == "admin-t"
    spec = made["spec"]
    assert isinstance(spec, dict)
    assert spec["cron"] == "0 20 * * mon-fri" and spec["misfire_grace"] == 1800.0
    assert spec["skip_dates"] == ["2026-12-24"] and spec["opt_out_tag"] == "fleet-opt-out=true"
    next_fire = made["next_fire"]
    assert isinstance(next_fire, dict) and next_fire["at"].endswith("Z")
    assert made["last_fire"] is None

    listed = await api.get("/v1/policies")
    assert listed.status == 200 and [p["id"] for p in listed.body["items"]] == ["nightly-stop"]
    one = await api.get("/v1/policies/nightly-stop")
    assert one.status == 200 and one.body["spec"] == spec

    replaced = await api.call(
        "PUT", "/v1/policies/nightly-stop", json={**BODY, "enabled": False}, role="admin"
    )
    assert replaced.status == 200, replaced.body
    assert replaced.body["version"] == 2 and replaced.body["next_fire"] is None
    stale = await api.call(
        "PUT",
        "/v1/policies/nightly-stop",
        json=BODY,
        role="admin",
        headers={"If-Match": "1"},
    )
    assert stale.status == 409, stale.body
    fresh = await api.call(
        "PUT", "/v1/policies/nightly-stop", json=BODY, role="admin", headers={"If-Match": '"2"'}
    )
    assert fresh.status == 200 and fresh.body["version"] == 3

    deleted = await api.call("DELETE", "/v1/policies/nightly-stop", role="admin")
    assert deleted.status == 200 and deleted.body["id"] == "nightly-stop"
    gone = await api.get("/v1/policies/nightly-stop")
    assert gone.status == 404 and gone.content_type == "application/problem+json"
    assert (await api.get("/v1/policies")).body["items"] == []


async def test_invalid_policies_are_422_naming_the_field(api: Api) -> None:
    cases = [
        ({**BODY, "cron": "61 * * * *"}, "cron"),
        ({**BODY, "timezone": "Mars/Olympus"}, "timezone"),
        ({**BODY, "targets": {"endpoints": ["nowhere"]}}, "targets.endpoints"),
        ({**BODY, "targets": {"tags_all": {"k" * 256: "x"}}}, "targets.tags_all"),
        ({**BODY, "action": "explode"}, "action"),
        ({**BODY, "name": "No Spaces"}, "name"),
        ({**BODY, "surprise": 1}, "surprise"),
        ({**BODY, "action": "delete", "mode": "cleanup"}, "allow_delete"),
    ]
    for body, field in cases:
        reply = await api.call("POST", "/v1/policies", json=body, role="admin")
        assert reply.status == 422, (field, reply.body)
        assert str(reply.body["field"]).startswith(field), (field, reply.body)
        assert reply.content_type == "application/problem+json"
    bad_version = await api.call(
        "PUT", "/v1/policies/x", json=BODY, role="admin", headers={"If-Match": "soon"}
    )
    assert bad_version.status == 422 and bad_version.body["field"] == "If-Match"
    assert (await api.get("/v1/policies")).body["items"] == []


async def test_unknown_ids_are_404_and_names_are_unique(api: Api) -> None:
    await _create(api)
    again = await api.call("POST", "/v1/policies", json=BODY, role="admin")
    assert again.status == 409, again.body
    for method, path in (
        ("GET", "/v1/policies/nope"),
        ("PUT", "/v1/policies/nope"),
        ("DELETE", "/v1/policies/nope"),
        ("POST", "/v1/policies/nope/run"),
        ("GET", "/v1/policies/nope/preview"),
        ("GET", "/v1/policies/nope/fires"),
    ):
        body = {**BODY, "name": "nope"} if method == "PUT" else None
        reply = await api.call(method, path, json=body, role="admin")
        assert reply.status == 404, (method, path, reply.body)


async def test_roles_writes_need_admin_and_run_needs_operator(api: Api) -> None:
    assert (await api.call("POST", "/v1/policies", json=BODY, role="operator")).status == 403
    await _create(api)
    assert (await api.get("/v1/policies/nightly-stop", role="viewer")).status == 200
    put = await api.call("PUT", "/v1/policies/nightly-stop", json=BODY, role="operator")
    assert put.status == 403
    assert (await api.call("DELETE", "/v1/policies/nightly-stop", role="operator")).status == 403
    assert (await api.post("/v1/policies/nightly-stop/run", role="viewer")).status == 403
    run = await api.post("/v1/policies/nightly-stop/run", role="operator")
    assert run.status == 200 and run.body["fire"]["by"] == "operator-t"


async def test_run_now_twice_in_a_minute_is_one_operation(api_db: Api) -> None:
    api = api_db  # SQLite and PostgreSQL
    await _create(api)
    before = await api.operation_count()
    first = await api.post("/v1/policies/nightly-stop/run")
    second = await api.post("/v1/policies/nightly-stop/run")
    assert first.status == 200 and second.status == 200, (first.body, second.body)
    fire = first.body["fire"]
    if first.body["created"] is False:  # the minute turned between the calls: both are fires
        assert second.body["created"] is False
    assert fire["trigger"] == "manual" and fire["status"] == "fired", fire
    assert fire["dry_run"] is True and fire["idempotency_key"].startswith("policy:nightly-stop:")
    same_minute = second.body["fire"]["id"] == fire["id"]
    if same_minute:
        assert second.body["created"] is False
        assert second.body["fire"]["operation_id"] == fire["operation_id"]
    assert await api.operation_count() == before + (1 if same_minute else 2)
    op = await api.get(f"/v1/operations/{fire['operation_id']}")
    assert op.status == 200 and op.body["dry_run"] is True
    assert op.body["idempotency_key"] == fire["idempotency_key"]
    fires = await api.get("/v1/policies/nightly-stop/fires", params={"limit": "10"})
    assert fires.status == 200 and fire["id"] in [f["id"] for f in fires.body["items"]]
    shown = await api.get("/v1/policies/nightly-stop")
    assert shown.body["last_fire"] is not None


async def test_preview_shape(api: Api) -> None:
    await _create(api)
    reply = await api.get("/v1/policies/nightly-stop/preview", params={"n": "5", "servers": "3"})
    assert reply.status == 200, reply.body
    body = reply.body
    assert body["policy_id"] == "nightly-stop" and body["dry_run_only"] is True
    slots = body["slots"]
    assert isinstance(slots, list) and len(slots) == 5
    for slot in slots:
        assert set(slot) == {"at", "local", "note", "fires", "skipped_reason"}
        assert slot["local"].endswith(("+01:00", "+02:00"))
    targets = body["targets"]
    assert isinstance(targets, dict)
    assert targets["considered"] >= targets["acting"] >= 0
    assert len(targets["servers"]) <= 3
    assert targets["truncated"] == (targets["considered"] > 3)
    for server in targets["servers"]:
        assert server["endpoint"] == "ecs-sim" and {"act", "reason", "status"} <= set(server)
    too_many = await api.get("/v1/policies/nightly-stop/preview", params={"n": "0"})
    assert too_many.status == 422 and too_many.body["field"] == "n"


async def test_file_policies_cannot_be_changed_through_the_api(
    tmp_path: Path, sqlite_url: str
) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(FILE_POLICY, encoding="utf-8")
    settings = api_settings(tmp_path, sqlite_url, FLEET_POLICIES__FILES=f'["{path}"]')
    async with serving(settings) as api:
        shown = await api.get("/v1/policies/from-file")
        assert shown.status == 200 and shown.body["source"] == "file"
        body = {
            "name": "from-file", "cron": "0 4 * * *", "action": "reboot",
            "targets": {"name": "web-*"},
        }  # fmt: skip
        put = await api.call("PUT", "/v1/policies/from-file", json=body, role="admin")
        assert put.status == 409 and "file" in str(put.body["detail"])
        delete = await api.call("DELETE", "/v1/policies/from-file", role="admin")
        assert delete.status == 409
        clash = await api.call("POST", "/v1/policies", json=body, role="admin")
        assert clash.status == 409
        run = await api.post("/v1/policies/from-file/run")
        assert run.status == 200 and run.body["fire"]["dry_run"] is True


async def test_disabled_policy_engine_answers_503(tmp_path: Path, sqlite_url: str) -> None:
    settings = api_settings(tmp_path, sqlite_url, FLEET_POLICIES__ENABLED="false")
    async with serving(settings) as api:
        listed = await api.get("/v1/policies")
        assert listed.status == 503 and "disabled" in str(listed.body["detail"])
        assert listed.content_type == "application/problem+json"
        made = await api.call("POST", "/v1/policies", json=BODY, role="admin")
        assert made.status == 503


async def test_run_slot_and_durations_are_checked(api: Api) -> None:
    await _create(api)
    for slot in ("0001-01-01T00:00:00Z", "2026-01-01T20:00:00", "2999-01-01T19:00:00Z", "soon"):
        reply = await api.post("/v1/policies/nightly-stop/run", params={"slot": slot})
        assert reply.status == 422 and reply.body["field"] == "slot", (slot, reply.body)
    for grace in (1e152, -2, "9999999d", "P1D"):
        body = {**BODY, "name": "other", "misfire_grace": grace}
        reply = await api.call("POST", "/v1/policies", json=body, role="admin")
        assert reply.status == 422 and reply.body["field"] == "misfire_grace", (grace, reply.body)
    assert await api.operation_count() == 0


async def test_fires_page_by_slot_without_losing_a_slot_fired_late(api_db: Api) -> None:
    """A slot fired by hand after a newer one has a higher id but sorts after it: paging by
    `next_cursor` (passed as `before`) still reaches every fire once (SQLite and PostgreSQL)."""
    api = api_db
    await _create(api, {**BODY, "name": "hourly", "cron": "0 * * * *", "timezone": "UTC"})
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    slots = [hour, hour - timedelta(hours=2), hour - timedelta(hours=1)]  # fired in this order
    for slot in slots:
        reply = await api.post("/v1/policies/hourly/run", params={"slot": slot.isoformat()})
        assert reply.status == 200 and reply.body["created"] is True, reply.body
    seen: list[str] = []
    params = {"limit": "1"}
    for _ in range(4):
        page = await api.get("/v1/policies/hourly/fires", params=params)
        assert page.status == 200, page.body
        items = page.body["items"]
        assert isinstance(items, list)
        seen += [str(f["scheduled_at"]) for f in items]
        if page.body["next_cursor"] is None:
            break
        params = {"limit": "1", "before": str(page.body["next_cursor"])}
    newest_first = sorted(slots, reverse=True)
    assert [datetime.fromisoformat(s.replace("Z", "+00:00")) for s in seen] == newest_first
