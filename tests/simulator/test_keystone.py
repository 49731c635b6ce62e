"""Keystone v3 at /identity: version documents, tokens with a catalog, Keystone-shaped errors."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.simulator_fixtures import Sim


def password_auth(sim: Sim, **changes: Any) -> dict[str, Any]:
    ep = sim.endpoints["openstack"]
    user = {
        "name": ep["username"],
        "password": ep["password"],
        "domain": {"name": ep["user_domain_name"]},
    }
    project: dict[str, Any] = {
        "name": ep["project_name"],
        "domain": {"name": ep["project_domain_name"]},
    }
    user.update(changes.pop("user", {}))
    project.update(changes.pop("project", {}))
    return {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": project},
        }
    }


async def test_version_documents(simulator: Sim) -> None:
    base = simulator.base_url
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/identity/v3") as resp:
            assert resp.status == 200
            version = (await resp.json())["version"]
            assert resp.headers["X-Openstack-Request-Id"].startswith("req-")
        async with http.get(f"{base}/identity") as resp:
            assert resp.status == 300
            values = (await resp.json())["versions"]["values"]
    assert version["id"].startswith("v3") and version["status"] == "stable"
    assert version["links"][0]["href"] == f"{base}/identity/v3/"
    assert [v["id"] for v in values] == [version["id"]]


async def test_password_token_has_subject_header_and_compute_catalog(simulator: Sim) -> None:
    base = simulator.base_url
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/identity/v3/auth/tokens", json=password_auth(simulator)
        ) as resp:
            assert resp.status == 201
            token_value = resp.headers["X-Subject-Token"]
            token = (await resp.json())["token"]
    assert token["methods"] == ["password"]
    password = simulator.endpoints["openstack"]["password"]
    assert password not in json.dumps(list(simulator.requests()))  # the log hides it
    assert token["project"]["id"] == simulator.world.openstack_project_id
    assert token["user"]["name"] == "admin" and token["roles"]
    assert token["issued_at"] < token["expires_at"]
    compute = next(s for s in token["catalog"] if s["type"] == "compute")
    public = next(e for e in compute["endpoints"] if e["interface"] == "public")
    assert public["url"] == f"{base}/compute/v2.1"
    assert public["region_id"] == public["region"] == "RegionOne"
    assert any(s["type"] == "identity" for s in token["catalog"])
    stored = simulator.ctx.tokens[token_value]
    assert stored.project_id == simulator.world.openstack_project_id


@pytest.mark.parametrize(
    "changes",
    [
        {"user": {"password": "wrong"}},
        {"user": {"name": "nobody"}},
        {"user": {"domain": {"name": "Elsewhere"}}},
        {"project": {"name": "other-project"}},
    ],
    ids=["password", "user", "domain", "project"],
)
async def test_wrong_credentials_are_401_in_keystone_shape(
    simulator: Sim, changes: dict[str, Any]
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{simulator.base_url}/identity/v3/auth/tokens",
            json=password_auth(simulator, **changes),
        ) as resp:
            assert resp.status == 401
            assert "X-Subject-Token" not in resp.headers
            body = await resp.json()
    assert body == {
        "error": {
            "code": 401,
            "message": "The request you have made requires authentication.",
            "title": "Unauthorized",
        }
    }


async def test_malformed_body_is_400_and_scope_by_id_works(simulator: Sim) -> None:
    url = f"{simulator.base_url}/identity/v3/auth/tokens"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=b"{not json") as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["title"] == "Bad Request"
        body = password_auth(simulator)
        body["auth"]["scope"] = {"project": {"id": simulator.world.openstack_project_id}}
        async with http.post(url, json=body) as resp:
            assert resp.status == 201


async def test_token_validation_rescoping_and_revocation(simulator: Sim) -> None:
    url = f"{simulator.base_url}/identity/v3/auth/tokens"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=password_auth(simulator)) as resp:
            first = resp.headers["X-Subject-Token"]
        rescope = {
            "auth": {
                "identity": {"methods": ["token"], "token": {"id": first}},
                "scope": {"project": {"id": simulator.world.openstack_project_id}},
            }
        }
        async with http.post(url, json=rescope) as resp:
            assert resp.status == 201
            second = resp.headers["X-Subject-Token"]
        headers = {"X-Auth-Token": second, "X-Subject-Token": first}
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 200
            assert (await resp.json())["token"]["project"]["name"] == "fleet-sim"
        async with http.delete(url, headers=headers) as resp:
            assert resp.status == 204
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 404
        async with http.get(
            f"{simulator.base_url}/compute/v2.1/servers", headers={"X-Auth-Token": first}
        ) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["title"] == "Unauthorized"


async def test_tokens_are_rate_limited_as_keystone_token(simulator: Sim) -> None:
    simulator.set_limit("keystone:token", 1, 60.0)
    url = f"{simulator.base_url}/identity/v3/auth/tokens"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=password_auth(simulator)) as resp:
            assert resp.status == 201
        async with http.post(url, json=password_auth(simulator)) as resp:
            assert resp.status == 429
            assert int(resp.headers["Retry-After"]) >= 1
    assert [e["status"] for e in simulator.requests(rate_key="keystone:token")] == [201, 429]
