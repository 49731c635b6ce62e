"""Authorization matrix: every route x (no token, bad token, revoked, viewer, operator, admin)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from fleet.api.routes import ROUTES
from fleet.tokens import API_TOKENS, Role, TokenStore, secret_matches, split_token
from tests.api.conftest import Api

RANK = {"viewer": 1, "operator": 2, "admin": 3}


def _path(path: str, op_id: str) -> str:
    path = path.replace("{operation_id}", op_id).replace("{name}", "nobody-here")
    return path.replace("{webhook_id}", "nobody-here")


def _body(path: str) -> object:
    if path == "/v1/operations":
        return {"action": "start", "targets": {"endpoints": ["bms-sim"]}, "dry_run": True}
    if path == "/v1/tokens":
        return {"name": "made-by-matrix", "role": "viewer"}
    return None


async def _finished_op(api: Api) -> str:
    reply = await api.post(
        "/v1/operations",
        {"action": "start", "targets": {"endpoints": ["bms-sim"]}, "dry_run": True},
        role="admin",
    )
    assert reply.status == 200
    return str(reply.body["operation"]["id"])


async def test_every_route_by_every_role(api: Api) -> None:
    op_id = await _finished_op(api)
    checked = 0
    for route in ROUTES:
        path = _path(route.path, op_id)
        for role in (None, "viewer", "operator", "admin"):
            reply = await api.call(route.method, path, role=role, json=_body(route.path))
            where = (route.method, route.path, role, reply.status, reply.body)
            if route.role is None:
                assert reply.status == 200, where
            elif role is None:
                assert reply.status == 401, where
                assert reply.headers["WWW-Authenticate"].startswith("Bearer")
                assert reply.content_type == "application/problem+json"
            elif RANK[role] < RANK[route.role.value]:
                assert reply.status == 403, where
                assert reply.content_type == "application/problem+json"
            else:
                assert reply.status not in (401, 403), where
            checked += 1
    assert checked == 4 * len(ROUTES)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer fleet_0000000000000000_" + "0" * 64,
        "Bearer not-a-token",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
        "bearer",
    ],
)
async def test_bad_credentials_are_401(api: Api, header: str) -> None:
    reply = await api.call("GET", "/v1/endpoints", role=None, headers={"Authorization": header})
    assert reply.status == 401
    assert reply.body["status"] == 401


async def test_a_right_id_with_a_wrong_secret_is_401(api: Api) -> None:
    token_id, _secret = split_token(api.tokens["admin"]) or ("", "")
    forged = f"fleet_{token_id}_{'f' * 64}"
    reply = await api.call(
        "GET", "/v1/endpoints", role=None, headers={"Authorization": f"Bearer {forged}"}
    )
    assert reply.status == 401


async def test_revoked_token_is_refused_at_once(api: Api) -> None:
    made = await api.post("/v1/tokens", {"name": "short-lived", "role": "operator"}, role="admin")
    assert made.status == 201
    token = str(made.body["token"])
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.call("GET", "/v1/endpoints", role=None, headers=headers)).status == 200
    revoked = await api.call("DELETE", "/v1/tokens/short-lived", role="admin")
    assert revoked.status == 200 and revoked.body["revoked"] is True
    assert (await api.call("GET", "/v1/endpoints", role=None, headers=headers)).status == 401


async def test_tokens_are_stored_as_salted_hashes_and_listed_without_secrets(api: Api) -> None:
    store = TokenStore(api.fleet.store.db)
    info, token = await store.create("hash-check", Role.VIEWER, api.fleet.operations.clock.now())
    await store.create("hash-twin", Role.VIEWER, api.fleet.operations.clock.now())
    token_id, secret = split_token(token) or ("", "")
    async with api.fleet.store.db.read() as conn:
        rows = (await conn.execute(sa.select(API_TOKENS))).mappings().all()
    stored = {r["name"]: r["hash"] for r in rows}
    assert secret not in stored["hash-check"] and token not in stored["hash-check"]
    assert secret_matches(stored["hash-check"], secret)
    assert not secret_matches(stored["hash-twin"], secret)
    assert stored["hash-check"].split("$")[1] != stored["hash-twin"].split("$")[1]  # salts
    listed = await api.get("/v1/tokens", role="admin")
    assert "hash-check" in {t["name"] for t in listed.body["items"]}
    assert token not in str(listed.body) and stored["hash-check"] not in str(listed.body)
    assert (await store.verify(token)) is not None and info.id == token_id


async def test_token_names_are_unique_and_checked(api: Api) -> None:
    dup = await api.post("/v1/tokens", {"name": "viewer-t", "role": "viewer"}, role="admin")
    assert dup.status == 409 and dup.body["field"] == "name"
    bad = await api.post("/v1/tokens", {"name": "no spaces", "role": "viewer"}, role="admin")
    assert bad.status == 422 and bad.body["field"] == "name"
    role = await api.post("/v1/tokens", {"name": "x", "role": "root"}, role="admin")
    assert role.status == 422 and role.body["field"] == "role"


async def test_unknown_paths_need_a_token_too(api: Api) -> None:
    anonymous = await api.call("GET", "/v1/nothing-here", role=None)
    assert anonymous.status == 401
    known = await api.call("GET", "/v1/nothing-here", role="viewer")
    assert known.status == 404 and known.content_type == "application/problem+json"
    wrong = await api.call("PUT", "/v1/operations", role="viewer")
    assert wrong.status == 405 and "GET" in wrong.headers["Allow"]
