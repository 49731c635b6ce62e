"""The stdlib AK/SK signer gives byte-identical `Authorization` values to the official SDK."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from fleet.drivers.config import AkSkCredentials, Secret
from fleet.drivers.http import join_url
from fleet.drivers.huawei import signing
from fleet.drivers.huawei.auth import AkSkAuth

AK, SK = "HPUAEXAMPLEAK0000001", "skExample/0123456789+abcdefghijklmnopqrstu"
DATE = "20261122T151051Z"

Query = list[tuple[str, str | list[str] | bool]]

CASES: list[tuple[str, str, Query, dict[str, str], bytes | None]] = [
    ("GET", "/v1/p1/jobs/ff808082889bd969", [], {}, None),
    (
        "POST",
        "/v1/p1/cloudservers/action",
        [],
        {"Content-Type": "application/json;charset=utf-8"},
        json.dumps({"os-stop": {"type": "SOFT", "servers": [{"id": "a"}]}}).encode(),
    ),
    ("GET", "/v2.1/p1/servers/detail", [("limit", "1000"), ("marker", "abc")], {}, None),
    ("GET", "/v2.1/p1/servers/detail", [("name", "web server 01")], {}, None),
    ("GET", "/v2.1/p1/servers", [("tags", "env=prod,team=a&b"), ("q", "x/y?z#w")], {}, None),
    ("GET", "/v2.1/p1/servers", [("b", "2"), ("a", "1"), ("a", "0"), ("c", "~tilde")], {}, None),
    ("GET", "/v2.1/p1/servers", [("utf", "caf\u00e9 \u4e2d"), ("plus", "a+b")], {}, None),
    ("GET", "/v2.1/p1/servers", [("multi", ["z", "a", "m"]), ("flag", True)], {}, None),
    ("PUT", "/v2.1/p1/servers/s-1/tags/env%3Dprod", [], {}, None),
    ("DELETE", "/v2.1/p1/servers/s-1/tags/a%20b%2Fc", [], {}, None),
    ("DELETE", "/v2.1/p1/servers/s-1", [], {"X_Trace_Id": "not-signed"}, None),
    ("POST", "/v1/p1/servers/s-1/tags/action", [], {"X-Extra": "  padded  "}, b"{}"),
    ("GET", "/v1/p1/cloudservers/flavors/", [("availability_zone", "az1")], {}, None),
    ("HEAD", "/", [], {"Connection": "close"}, None),
]


def _base_headers(extra: dict[str, str]) -> dict[str, str]:
    return {
        "Host": "ecs.example.com:8443",
        "Content-Type": "application/json",
        "User-Agent": "fleet/0.1",
        "X-Project-Id": "p1",
        "X-Sdk-Date": DATE,
        **extra,
    }


def _sdk_authorization(
    method: str, path: str, query: Query, headers: dict[str, str], body: bytes | None
) -> str:
    request = SdkRequest(
        method=method,
        schema="https",
        host="ecs.example.com:8443",
        resource_path=path,
        query_params=[(k, list(v) if isinstance(v, list) else v) for k, v in query],
        header_params=dict(headers),
        body=body,
    )
    signed = Signer(BasicCredentials(AK, SK)).sign(request)
    return str(signed.header_params["Authorization"])


@pytest.mark.parametrize(("method", "path", "query", "extra", "body"), CASES)
def test_authorization_is_byte_identical_to_the_sdk(
    method: str, path: str, query: Query, extra: dict[str, str], body: bytes | None
) -> None:
    headers = _base_headers(extra)
    ours = signing.authorization(
        ak=AK,
        sk=SK,
        method=method,
        path=path,
        query=signing.canonical_query(query),
        headers=headers,
        body=body,
    )
    assert ours == _sdk_authorization(method, path, query, headers, body)


def test_headers_with_underscore_are_not_signed() -> None:
    headers = _base_headers({"X_Trace_Id": "1"})
    value = signing.authorization(
        ak=AK, sk=SK, method="GET", path="/", query="", headers=headers, body=None
    )
    names = value.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "x_trace_id" not in names
    assert names == sorted(["content-type", "host", "user-agent", "x-project-id", "x-sdk-date"])


def test_a_different_body_changes_the_signature() -> None:
    headers = _base_headers({})
    one = signing.authorization(
        ak=AK, sk=SK, method="POST", path="/v1/p1/x", query="", headers=headers, body=b'{"a":1}'
    )
    two = signing.authorization(
        ak=AK, sk=SK, method="POST", path="/v1/p1/x", query="", headers=headers, body=b'{"a":2}'
    )
    assert one != two


def test_canonical_uri_always_ends_with_a_slash_and_reencodes_segments() -> None:
    assert signing.canonical_uri("/v1/p/servers") == "/v1/p/servers/"
    assert signing.canonical_uri("/v1/p/tags/k%3Dv") == "/v1/p/tags/k%3Dv/"
    assert signing.canonical_uri("/a%20b/~c") == "/a%20b/~c/"


async def test_aksk_auth_signs_what_the_transport_sends() -> None:
    """AkSkAuth on the URL the transport builds equals the SDK on the same request."""
    query: Query = [("name", "db 1"), ("limit", "25")]
    url = join_url(
        "https://ecs.example.com:8443",
        "/v2.1/p1/servers/detail",
        signing.canonical_query(query),
    )
    auth = AkSkAuth(
        AkSkCredentials(ak=Secret(AK), sk=Secret(SK)),
        "p1",
        now=lambda: datetime(2026, 11, 22, 15, 10, 51, tzinfo=UTC),
    )
    base = {
        "Host": "ecs.example.com:8443",
        "Content-Type": "application/json",
        "User-Agent": "fleet/0.1",
    }
    added = await auth.headers("GET", url, base, None)
    assert added["X-Sdk-Date"] == DATE
    assert added["X-Project-Id"] == "p1"
    unsigned = {k: v for k, v in added.items() if k != "Authorization"}
    expected = _sdk_authorization(
        "GET", "/v2.1/p1/servers/detail", query, {**base, **unsigned}, None
    )
    assert added["Authorization"] == expected
    assert "db%201" in str(url)
    assert repr(auth) == "AkSkAuth(project_id='p1')"
