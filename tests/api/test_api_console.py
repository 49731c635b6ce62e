"""The console's files: open (no token), only the shipped files, under a strict CSP; and whoami."""

from __future__ import annotations

import re

import pytest

from fleet.api import console
from tests.api.conftest import Api


async def _raw(api: Api, path: str) -> tuple[int, dict[str, str], str]:
    async with api.client.get(path) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def test_the_page_answers_without_a_token_with_a_strict_csp(api: Api) -> None:
    status, headers, text = await _raw(api, "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    # No inline script: every <script> loads a file of the console from this origin.
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", text, flags=re.S)
    assert scripts and all(
        body.strip() == "" and 'src="/console/' in attrs for attrs, body in scripts
    )
    assert "http://" not in text and "https://" not in text  # no CDN


async def test_every_file_the_page_loads_is_shipped_and_open(api: Api) -> None:
    _, _, text = await _raw(api, "/")
    names = set(re.findall(r'(?:src|href)="/console/([^"]+)"', text))
    for name in list(names):
        status, headers, body = await _raw(api, f"/console/{name}")
        assert status == 200, name
        assert "Content-Security-Policy" in headers
        names |= set(re.findall(r'from "\./([^"]+)"', body))  # the modules it imports
    for name in names:
        status, _, body = await _raw(api, f"/console/{name}")
        assert status == 200, name
        assert "innerHTML" not in body and "insertAdjacentHTML" not in body, name
        assert "eval(" not in body, name
    assert {"app.js", "api.js", "dom.js", "style.css"} <= names


@pytest.mark.parametrize("path", ["/console/nope.js", "/console/..%2Fapp.py", "/console/"])
async def test_only_the_shipped_files_are_served(api: Api, path: str) -> None:
    status, headers, _ = await _raw(api, path)
    assert status in (401, 404)
    if status == 404:
        assert headers["Content-Type"].startswith("application/problem+json")


async def test_the_api_still_needs_a_token(api: Api) -> None:
    reply = await api.get("/v1/operations", role=None)
    assert reply.status == 401
    assert set(console.PATHS) == {"/", "/console/{asset}"}


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
async def test_whoami_names_the_token_and_its_role(api: Api, role: str) -> None:
    reply = await api.get("/v1/whoami", role=role)
    assert reply.status == 200
    assert reply.body == {"name": f"{role}-t", "role": role}
    assert (await api.get("/v1/whoami", role=None)).status == 401
