"""Huawei IAM in the simulator: password tokens, projects, and the token / AK-SK checks."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import aiohttp
import pytest
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from fleet.simulator import aksk
from tests.simulator.huawei_client import Huawei, huawei, issue_token
from tests.simulator_fixtures import Sim

JOB_PATH = "/v1/{pid}/jobs/0123456789abcdef0123456789abcdef"


@pytest.fixture
async def hw(simulator: Sim) -> AsyncIterator[Huawei]:
    async with huawei(simulator) as client:
        yield client


def _password_body(sim: Sim, password: str, scope: object) -> dict[str, object]:
    h = sim.endpoints["huawei"]
    user = {"name": h["username"], "password": password, "domain": {"name": h["domain_name"]}}
    return {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": scope,
        }
    }


async def test_token_is_201_with_subject_header_24h_expiry_and_project_scope(
    simulator: Sim,
) -> None:
    hw = simulator.endpoints["huawei"]
    body = _password_body(simulator, hw["password"], {"project": {"name": hw["region"]}})
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{simulator.base_url}/v3/auth/tokens", json=body) as resp,
    ):
        assert resp.status == 201
        token = resp.headers["X-Subject-Token"]
        assert resp.headers["X-Request-Id"]
        doc = (await resp.json())["token"]
    assert token and simulator.ctx.tokens[token].project_id == hw["project_id"]
    expires = datetime.strptime(doc["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    lifetime = expires - simulator.world.clock.now()
    assert timedelta(hours=23, minutes=59) < lifetime <= timedelta(hours=24)
    assert doc["methods"] == ["password"]
    assert doc["project"]["id"] == hw["project_id"]
    regions = {e["region_id"] for svc in doc["catalog"] for e in svc["endpoints"]}
    assert regions == {hw["region"]}
    assert simulator.requests(rate_key="huawei-iam:token")


async def test_wrong_password_is_refused_and_a_domain_token_cannot_act_on_the_project(
    simulator: Sim,
) -> None:
    hw = simulator.endpoints["huawei"]
    async with aiohttp.ClientSession() as http:
        body = _password_body(simulator, "nope", {"project": {"name": hw["region"]}})
        async with http.post(f"{simulator.base_url}/v3/auth/tokens", json=body) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == 401
        body = _password_body(simulator, hw["password"], {"domain": {"name": hw["domain_name"]}})
        async with http.post(f"{simulator.base_url}/v3/auth/tokens", json=body) as resp:
            assert resp.status == 201
            domain_token = resp.headers["X-Subject-Token"]
        client = Huawei(simulator, http, domain_token)
        answer = await client.call("GET", JOB_PATH)
    assert (answer.status, answer.code) == (400, "Ecs.0023")


async def test_missing_unknown_and_expired_tokens_get_common_0013(hw: Huawei) -> None:
    no_token = await hw.call("GET", JOB_PATH, token="")
    assert (no_token.status, no_token.code) == (401, "Common.0013")
    async with hw.http.get(hw.url(JOB_PATH)) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "Common.0013"
    valid = await hw.call("GET", JOB_PATH)
    assert (valid.status, valid.code) == (400, "Common.0011")  # authenticated, job unknown
    hw.sim.advance(24 * 3600 + 1)
    expired = await hw.call("GET", JOB_PATH)
    assert (expired.status, expired.code) == (401, "Common.0013")


async def test_token_of_another_project_is_ecs_0023(hw: Huawei) -> None:
    answer = await hw.call("GET", "/v1/ffffffffffffffffffffffffffffffff/jobs/x")
    assert (answer.status, answer.code) == (400, "Ecs.0023")


async def test_projects_list_with_name_filter(hw: Huawei) -> None:
    region = hw.sim.endpoints["huawei"]["region"]
    answer = await hw.call("GET", f"/v3/projects?name={region}")
    assert answer.status == 200
    assert [p["id"] for p in answer.body["projects"]] == [hw.pid]
    other = await hw.call("GET", "/v3/projects?name=elsewhere")
    assert other.body["projects"] == []


async def test_signed_request_is_accepted_and_bad_signatures_are_refused(hw: Huawei) -> None:
    good = await hw.signed("GET", JOB_PATH)
    assert (good.status, good.code) == (400, "Common.0011")  # got past authentication
    wrong_sk = await hw.signed("GET", JOB_PATH, sk="not-the-secret")
    assert (wrong_sk.status, wrong_sk.code) == (401, "APIGW.0301")
    assert "signature" in wrong_sk.body["error_msg"]
    assert wrong_sk.body["request_id"] == wrong_sk.headers["X-Request-Id"]
    unknown_ak = await hw.signed("GET", JOB_PATH, ak="NOSUCHACCESSKEY")
    assert (unknown_ak.status, unknown_ak.code) == (401, "APIGW.0301")
    assert "ak not exist" in unknown_ak.body["error_msg"]
    stale = await hw.signed("GET", JOB_PATH, sdk_date=datetime.now(UTC) - timedelta(minutes=16))
    assert (stale.status, stale.code) == (401, "APIGW.0301")
    fresh_enough = await hw.signed(
        "GET", JOB_PATH, sdk_date=datetime.now(UTC) - timedelta(minutes=14)
    )
    assert fresh_enough.code == "Common.0011"


async def test_a_body_changed_after_signing_is_refused(hw: Huawei) -> None:
    ecs = hw.sim.servers("ecs")[0]
    body = {"os-start": {"servers": [{"id": ecs}]}}
    path = "/v1/{pid}/cloudservers/action"
    tampered = await hw.signed("POST", path, body, tamper=b'{"os-stop": {"servers": []}}')
    assert (tampered.status, tampered.code) == (401, "APIGW.0301")
    assert hw.sim.world.jobs == {}
    honest = await hw.signed("POST", path, body)
    assert honest.status == 200 and honest.body["job_id"] in hw.sim.world.jobs


async def test_signed_request_for_another_project_is_common_0018(hw: Huawei) -> None:
    answer = await hw.signed("GET", JOB_PATH, project_header="f" * 32)
    assert (answer.status, answer.code) == (400, "Common.0018")


def test_verifier_agrees_with_the_sdk_signer_on_paths_queries_and_bodies() -> None:
    when = datetime(2026, 11, 22, 15, 10, 51, tzinfo=UTC)
    body = '{"a": "ü"}'.encode()
    request = SdkRequest(
        method="POST",
        schema="http",
        host="127.0.0.1:8080",
        resource_path="/v1/p 1/servers/~x:y",
        query_params=[("b", "2 3"), ("a", "1"), ("a", "0")],
        header_params={
            "Content-Type": "application/json;charset=utf-8",
            "X-Sdk-Date": when.strftime(aksk.DATE_FORMAT),
        },
        body=body,
    )
    Signer(SimpleNamespace(ak="AK1", sk="SK1")).sign(request)
    raw_path, _, query = request.uri.partition("?")
    headers = dict(request.header_params)
    common = {
        "method": "POST",
        "raw_path": raw_path.replace(" ", "%20"),
        "query_string": query,
        "headers": headers,
        "now": when + timedelta(minutes=1),
    }
    assert aksk.verify(body=body, keys={"AK1": "SK1"}, **common) == "AK1"
    with pytest.raises(aksk.SignatureError, match="signature"):
        aksk.verify(body=body + b" ", keys={"AK1": "SK1"}, **common)
    with pytest.raises(aksk.SignatureError, match="signature"):
        aksk.verify(body=body, keys={"AK1": "SK2"}, **common)
    assert hashlib.sha256(b"").hexdigest() in aksk.canonical_request(
        method="GET",
        raw_path="/",
        query_string="",
        headers={},
        signed_headers=(),
        body=b"",
    )


async def test_a_token_can_be_scoped_by_project_id(simulator: Sim) -> None:
    hw = simulator.endpoints["huawei"]
    body = _password_body(simulator, hw["password"], {"project": {"id": hw["project_id"]}})
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{simulator.base_url}/v3/auth/tokens", json=body) as resp,
    ):
        assert resp.status == 201
        token = resp.headers["X-Subject-Token"]
    assert simulator.ctx.tokens[token].project_id == hw["project_id"]
    async with aiohttp.ClientSession() as http:
        other = await issue_token(http, simulator)
    assert other != token
