"""`/v1/schedules`: named per-server schedules through the API (CRUD, 422 naming the field,
404, 409 for file schedules and stale versions, roles) and the per-server preview over the
simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, api_settings, serving
from tests.api.test_api_policy_patch import etag

OFFICE: dict[str, object] = {
    "name": "office",
    "timezone": "Europe/Berlin",
    "periods": [{"begintime": "08:00", "endtime": "18:00", "weekdays": ["mon-fri"]}],
}
FILE_SCHEDULE = """
[[schedules]]
name = "from-file"
timezone = "Asia/Shanghai"
[[schedules.periods]]
begintime = "09:00"
endtime = "21:00"
"""


async def test_crud_round_trip(api: Api) -> None:
    made = await api.call("POST", "/v1/schedules", json=OFFICE, role="admin")
    assert made.status == 201, made.body
    assert made.body["source"] == "api" and made.body["version"] == 1
    assert made.body["state_now"] in ("running", "stopped")
    nxt = made.body["next_transitions"]
    assert isinstance(nxt, list) and len(nxt) == 4
    assert {t["state"] for t in nxt} == {"running", "stopped"}
    listed = await api.get("/v1/schedules")
    items = listed.body["items"]
    assert isinstance(items, list) and [s["name"] for s in items] == ["office"]
    changed = OFFICE | {"periods": [{"begintime": "07:00", "endtime": "19:00"}]}
    put = await api.call(
        "PUT", "/v1/schedules/office", json=changed, role="admin", headers={"If-Match": '"1"'}
    )
    assert put.status == 200 and put.body["version"] == 2, put.body
    stale = await api.call(
        "PUT", "/v1/schedules/office", json=changed, role="admin", headers={"If-Match": '"1"'}
    )
    assert stale.status == 409
    again = await api.call("POST", "/v1/schedules", json=OFFICE, role="admin")
    assert again.status == 409
    operator = await api.call("POST", "/v1/schedules", json=OFFICE | {"name": "x"}, role="operator")
    assert operator.status == 403
    gone = await api.call("DELETE", "/v1/schedules/office", role="admin")
    assert gone.status == 200 and gone.body["name"] == "office"
    assert (await api.get("/v1/schedules/office")).status == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"periods": [{"begintime": "18:00", "endtime": "08:00"}]}, "periods[0].endtime"),
        ({"periods": [{"weekdays": ["mon", "someday"]}]}, "periods[0].weekdays[1]"),
        ({"periods": [{"begintime": "8"}]}, "periods[0].begintime"),
        ({"periods": []}, "periods"),
        ({"skip_calendars": ["nowhere"]}, "skip_calendars[0]"),
        ({"weekdays": ["mon"]}, "weekdays"),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    api: Api, change: dict[str, object], field: str
) -> None:
    reply = await api.call("POST", "/v1/schedules", json=OFFICE | change, role="admin")
    assert reply.status == 422, reply.body
    assert reply.body["field"] == field, reply.body
    assert (await api.get("/v1/schedules")).body["items"] == []


async def test_a_file_schedule_is_read_only(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(FILE_SCHEDULE, encoding="utf-8")
    settings = api_settings(tmp_path, sqlite_url, FLEET_POLICIES__FILES=f'["{path}"]')
    async with serving(settings) as api:
        shown = await api.get("/v1/schedules/from-file")
        assert shown.status == 200 and shown.body["source"] == "file"
        body = {"name": "from-file", "periods": [{}]}
        put = await api.call("PUT", "/v1/schedules/from-file", json=body, role="admin")
        assert put.status == 409 and "file" in str(put.body["detail"])
        assert (await api.call("DELETE", "/v1/schedules/from-file", role="admin")).status == 409
        assert (await api.call("POST", "/v1/schedules", json=body, role="admin")).status == 409


async def test_preview_lists_each_tagged_server(api: Api) -> None:
    assert (await api.call("POST", "/v1/schedules", json=OFFICE, role="admin")).status == 201
    servers = await api.servers("ecs-sim")
    tagged = servers[0]
    change = {"tags": {"fleet-schedule": "office"}}
    url = f"{api.fleet.simulator_url}/_sim/servers/{tagged['id']}"
    async with api.client.session.patch(url, json=change) as resp:
        assert resp.status == 200
    reply = await api.get("/v1/schedules/office/preview", params={"n": "3"})
    assert reply.status == 200, reply.body
    assert reply.body["tagged"] == 1
    rows = reply.body["servers"]
    assert isinstance(rows, list) and len(rows) == 1
    row: dict[str, Any] = rows[0]
    assert row["server_id"] == tagged["id"] and row["endpoint"] == "ecs-sim"
    assert row["desired_now"] == reply.body["state_now"]
    assert len(row["next_transitions"]) == 3
    wanted = {"running": "stopped", "stopped": "running"}[row["desired_now"]]
    assert row["action_now"] == ({"stopped": "stop", "running": "start"}[row["desired_now"]]
                                 if row["status"] == wanted else None)  # fmt: skip
    assert (await api.get("/v1/schedules/nope/preview")).status == 404


async def test_a_schedule_policy_stops_or_starts(api: Api) -> None:
    body = {"name": "office-stop", "cron": "* * * * *", "mode": "schedule", "action": "stop"}
    made = await api.call("POST", "/v1/policies", json=body, role="admin")
    assert made.status == 201, made.body
    bad = await api.call(
        "POST", "/v1/policies", json=body | {"name": "x", "action": "reboot"}, role="admin"
    )
    assert bad.status == 422 and bad.body["field"] == "action", bad.body
    preview = await api.get("/v1/policies/office-stop/preview")
    assert preview.status == 200 and preview.body["targets"]["considered"] == 0  # type: ignore[index]


async def test_patch_changes_only_the_keys_given(api: Api) -> None:
    assert (await api.call("POST", "/v1/schedules", json=OFFICE, role="admin")).status == 201
    patch = {"timezone": "Asia/Shanghai", "description": "moved"}
    done = await api.call("PATCH", "/v1/schedules/office", json=patch, role="admin")
    assert done.status == 200, done.body
    assert done.body["version"] == 2 and etag(done) == '"2"'
    spec = done.body["spec"]
    assert spec["timezone"] == "Asia/Shanghai" and spec["description"] == "moved"
    assert spec["periods"] == [
        {"begintime": "08:00", "endtime": "18:00", "weekdays": ["mon-fri"], "description": ""}
    ]
    assert done.body["updated_by"] == "admin-t"
    cleared = await api.call(
        "PATCH", "/v1/schedules/office", json={"description": None}, role="admin",
        headers={"If-Match": '"2"'},
    )  # fmt: skip
    assert cleared.status == 200 and cleared.body["spec"]["description"] == ""
    stale = await api.call(
        "PATCH", "/v1/schedules/office", json={"description": "x"}, role="admin",
        headers={"If-Match": '"2"'},
    )  # fmt: skip
    assert stale.status == 409 and "version is 3, not 2" in str(stale.body["detail"])
    operator = await api.call("PATCH", "/v1/schedules/office", json={}, role="operator")
    assert operator.status == 403
    missing = await api.call("PATCH", "/v1/schedules/nope", json={}, role="admin")
    assert missing.status == 404
    assert (await api.get("/v1/schedules/office")).body["version"] == 3


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"periods": [{"begintime": "18:00", "endtime": "08:00"}]}, "periods[0].endtime"),
        ({"periods": None}, "periods"),
        ({"skip_dates": ["2026-02-30"]}, "skip_dates[0]"),
        ({"weekdays": ["mon"]}, "weekdays"),
        ({"name": "other"}, "name"),
    ],
)
async def test_a_bad_patch_is_422_naming_the_field(
    api: Api, patch: dict[str, object], field: str
) -> None:
    assert (await api.call("POST", "/v1/schedules", json=OFFICE, role="admin")).status == 201
    reply = await api.call("PATCH", "/v1/schedules/office", json=patch, role="admin")
    assert reply.status == 422, reply.body
    assert reply.body["field"] == field, reply.body
    assert (await api.get("/v1/schedules/office")).body["version"] == 1


async def test_a_file_schedule_cannot_be_patched(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(FILE_SCHEDULE, encoding="utf-8")
    settings = api_settings(tmp_path, sqlite_url, FLEET_POLICIES__FILES=f'["{path}"]')
    async with serving(settings) as api:
        patch = {"timezone": "UTC"}
        reply = await api.call("PATCH", "/v1/schedules/from-file", json=patch, role="admin")
        assert reply.status == 409 and "file" in str(reply.body["detail"])
