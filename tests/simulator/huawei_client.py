"""A minimal Huawei API caller for the simulator tests: IAM token or AK/SK signed calls.

Signatures are made with the official SDK's signer (huaweicloudsdkcore, a test-only dependency),
so the simulator's verifier is checked against an implementation it does not share code with.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from multidict import CIMultiDict

from tests.simulator_fixtures import Sim


@dataclass
class Answer:
    status: int
    body: Any
    headers: CIMultiDict[str]

    @property
    def code(self) -> str | None:
        """The Huawei error code of an error body, whichever envelope it uses."""
        if not isinstance(self.body, dict):
            return None
        if "error_code" in self.body:
            return str(self.body["error_code"])
        error = self.body.get("error")
        return str(error["code"]) if isinstance(error, dict) else None


@dataclass
class Huawei:
    sim: Sim
    http: aiohttp.ClientSession
    token: str

    @property
    def pid(self) -> str:
        return self.sim.world.huawei_project_id

    def url(self, path: str) -> str:
        return self.sim.base_url + path.replace("{pid}", self.pid)

    async def call(
        self, method: str, path: str, body: object = None, *, token: str | None = None
    ) -> Answer:
        """A token-authenticated call; `{pid}` in `path` is the world's Huawei project id."""
        headers = {"X-Auth-Token": self.token if token is None else token}
        async with self.http.request(method, self.url(path), json=body, headers=headers) as resp:
            raw = await resp.read()
            parsed = json.loads(raw) if raw else None
            return Answer(resp.status, parsed, CIMultiDict(resp.headers))

    async def signed(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        ak: str | None = None,
        sk: str | None = None,
        sdk_date: datetime | None = None,
        tamper: bytes | None = None,
        project_header: str | None = None,
    ) -> Answer:
        """An AK/SK-signed call (signed by the SDK's Signer, as the official clients do)."""
        creds = self.sim.endpoints["huawei"]
        host = urlsplit(self.sim.base_url).netloc
        raw = b"" if body is None else json.dumps(body).encode()
        headers = {
            "Content-Type": "application/json;charset=utf-8",
            "User-Agent": "fleet-tests",
            "X-Project-Id": project_header or self.pid,
            "X-Sdk-Date": (sdk_date or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ"),
        }
        resource = path.replace("{pid}", self.pid)
        request = SdkRequest(
            method=method,
            schema="http",
            host=host,
            resource_path=resource,
            query_params=[],
            header_params=headers,
            body=raw,
        )
        key = SimpleNamespace(ak=ak or creds["ak"], sk=sk or creds["sk"])
        Signer(key).sign(request)
        data = tamper if tamper is not None else raw
        async with self.http.request(
            method, self.sim.base_url + resource, data=data, headers=request.header_params
        ) as resp:
            text = await resp.read()
            return Answer(
                resp.status, json.loads(text) if text else None, CIMultiDict(resp.headers)
            )


async def issue_token(http: aiohttp.ClientSession, sim: Sim, project: str | None = None) -> str:
    hw = sim.endpoints["huawei"]
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": hw["username"],
                        "password": hw["password"],
                        "domain": {"name": hw["domain_name"]},
                    }
                },
            },
            "scope": {"project": {"name": project or hw["region"]}},
        }
    }
    async with http.post(f"{sim.base_url}/v3/auth/tokens", json=body) as resp:
        assert resp.status == 201, await resp.text()
        return resp.headers["X-Subject-Token"]


@asynccontextmanager
async def huawei(sim: Sim) -> AsyncIterator[Huawei]:
    async with aiohttp.ClientSession() as http:
        yield Huawei(sim, http, await issue_token(http, sim))


def ids_body(ids: list[str]) -> list[dict[str, str]]:
    return [{"id": i} for i in ids]
