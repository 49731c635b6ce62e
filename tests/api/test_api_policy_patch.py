"""`PATCH /v1/policies/{name}`: a JSON merge patch onto the stored spec, checked, admitted and
stored exactly as a PUT of the result (422 naming the field, 404, 409 for file policies and
stale versions, `If-Match` and `ETag`), on both databases where admission is involved."""

from __future__ import annotations

from pathlib import Path

from tests.api.conftest import Api, Reply, api_settings, serving
from tests.api.test_api_policies import BODY, FILE_POLICY


def etag(reply: Reply) -> str | None:
    """Header names are case-insensitive (aiohttp sends `Etag`)."""
    return {k.lower(): v for k, v in reply.headers.items()}.get("etag")


async def _create(api: Api, body: dict[str, object] | None = None) -> dict[str, object]:
    reply = await api.call("POST", "/v1/policies", json=body or BODY, role="admin")
    assert reply.status == 201, reply.body
    return reply.body


async def _patch(api: Api, name: str, patch: object, **kw: object) -> tuple[int, dict[str, object]]:
    reply = await api.call("PATCH", f"/v1/policies/{name}", json=patch, role="admin", **kw)  # type: ignore[arg-type]
    return reply.status, reply.body


async def test_a_partial_patch_changes_only_the_keys_given(api: Api) -> None:
    made = await _create(api)
    reply = await api.call(
        "PATCH",
        "/v1/policies/nightly-stop",
        json={"cron": "30 21 * * mon-fri", "targets": {"name": "web-*"}},
        role="admin",
    )
    assert reply.status == 200, reply.body
    assert etag(reply) == '"2"' and reply.body["version"] == 2
    spec, before = reply.body["spec"], made["spec"]
    assert isinstance(spec, dict) and isinstance(before, dict)
    assert spec["cron"] == "30 21 * * mon-fri"
    assert spec["targets"]["endpoints"] == ["ecs-sim"] and spec["targets"]["name"] == "web-*"  # type: ignore[index]
    unchanged = {k: v for k, v in spec.items() if k not in ("cron", "targets")}
    assert unchanged == {k: v for k, v in before.items() if k not in ("cron", "targets")}
    assert reply.body["updated_by"] == "admin-t"
    shown = await api.get("/v1/policies/nightly-stop")
    assert shown.body["spec"] == spec and etag(shown) == '"2"'
    # null removes a key: its default applies again
    status, body = await _patch(api, "nightly-stop", {"description": None, "misfire_grace": None})
    assert status == 200, body
    assert body["spec"]["description"] == "" and body["spec"]["misfire_grace"] == 900.0  # type: ignore[index]


async def test_enable_and_disable_are_a_patch_of_enabled(api: Api) -> None:
    await _create(api)
    status, body = await _patch(api, "nightly-stop", {"enabled": False})
    assert status == 200, body  # was 405: a partial change needed a whole PUT
    assert body["spec"]["enabled"] is False and body["next_fire"] is None  # type: ignore[index]
    status, body = await _patch(api, "nightly-stop", {"enabled": True})
    assert status == 200 and body["spec"]["enabled"] is True and body["next_fire"] is not None  # type: ignore[index]


async def test_bad_patches_are_422_naming_the_field(api: Api) -> None:
    await _create(api)
    cases: list[tuple[object, str]] = [
        ({"cron": "every night"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"enabled": "yes"}, "enabled"),
        ({"colour": "red"}, "colour"),
        ({"targets": {"tags_all": "env"}}, "targets.tags_all"),
        ({"name": "other"}, "name"),
    ]
    for patch, field in cases:
        status, body = await _patch(api, "nightly-stop", patch)
        assert status == 422 and body["field"] == field, (patch, body)
    status, body = await _patch(api, "nightly-stop", ["cron"])
    assert status == 422, body
    bad_version = await api.call(
        "PATCH", "/v1/policies/nightly-stop", json={}, role="admin", headers={"If-Match": "x"}
    )
    assert bad_version.status == 422 and bad_version.body["field"] == "If-Match"
    assert (await api.get("/v1/policies/nightly-stop")).body["version"] == 1


async def test_if_match_and_unknown_ids_and_roles(api: Api) -> None:
    await _create(api)
    status, body = await _patch(
        api, "nightly-stop", {"cron": "0 22 * * *"}, headers={"If-Match": '"1"'}
    )
    assert status == 200 and body["version"] == 2, body
    status, body = await _patch(
        api, "nightly-stop", {"cron": "0 23 * * *"}, headers={"If-Match": "1"}
    )
    assert status == 409 and "version is 2" in str(body["detail"]), body
    assert (await api.get("/v1/policies/nightly-stop")).body["spec"]["cron"] == "0 22 * * *"  # type: ignore[index]
    status, body = await _patch(api, "nope", {"enabled": False})
    assert status == 404, body
    operator = await api.call("PATCH", "/v1/policies/nightly-stop", json={}, role="operator")
    assert operator.status == 403


async def test_a_patch_goes_through_the_one_door(api_db: Api) -> None:
    api = api_db
    flavors = await api.get("/v1/endpoints/ecs-sim/flavors")
    assert flavors.status == 200, flavors.body
    flavor = flavors.body["items"][0]["name"]  # type: ignore[index]
    resize = {
        "name": "grow", "cron": "0 2 * * *", "action": "resize", "params": {"flavor": flavor},
        "targets": {"endpoints": ["ecs-sim"], "name": "web-*"}, "dry_run_only": True,
    }  # fmt: skip
    await _create(api, resize)
    status, body = await _patch(api, "grow", {"params": {"flavor": "xxl"}})
    assert status == 422 and body["field"] == "params.flavor", body
    status, body = await _patch(api, "grow", {"targets": {"endpoints": ["bms-sim"]}})
    assert status == 422 and body["field"] == "targets.endpoints[0]", body
    shown = await api.get("/v1/policies/grow")
    assert shown.body["version"] == 1 and shown.body["spec"]["params"]["flavor"] == flavor  # type: ignore[index]
    # a disabled policy acts on nothing: admitted when it is enabled again, as with PUT
    status, body = await _patch(api, "grow", {"enabled": False, "params": {"flavor": "xxl"}})
    assert status == 200 and body["spec"]["params"]["flavor"] == "xxl", body  # type: ignore[index]
    status, body = await _patch(api, "grow", {"enabled": True})
    assert status == 422 and body["field"] == "params.flavor", body
    status, body = await _patch(api, "grow", {"enabled": True, "params": {"flavor": flavor}})
    assert status == 200 and body["spec"]["enabled"] is True, body  # type: ignore[index]


async def test_file_policies_answer_409_to_a_patch(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(FILE_POLICY, encoding="utf-8")
    settings = api_settings(tmp_path, sqlite_url, FLEET_POLICIES__FILES=f'["{path}"]')
    async with serving(settings) as api:
        for patch in ({"enabled": False}, {"cron": "0 4 * * *"}):
            status, body = await _patch(api, "from-file", patch)
            assert status == 409 and "file" in str(body["detail"]), body
        shown = await api.get("/v1/policies/from-file")
        assert shown.body["version"] == 1 and shown.body["spec"]["enabled"] is True  # type: ignore[index]
