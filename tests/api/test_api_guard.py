"""The admin's blast-radius limits are a ceiling a request cannot lift.

`ecs-sim` is configured with `max_servers = 3` and `max_percent = 50` (of its 16 servers): a
request's `guard` may only tighten those limits, per limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fleet.settings import Settings
from tests.api.conftest import Api, api_settings, serving

ENDPOINT = "ecs-sim"


def guarded(settings: Settings, **limits: object) -> Settings:
    endpoints = [
        ep.model_copy(update=limits) if ep.name == ENDPOINT else ep for ep in settings.endpoints
    ]
    return settings.model_copy(update={"endpoints": endpoints})


@pytest.fixture
async def api(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Api]:
    settings = guarded(api_settings(tmp_path, sqlite_url), max_servers=3, max_percent=50.0)
    async with serving(settings) as running:
        yield running


async def _ids(api: Api, n: int) -> list[str]:
    servers = await api.servers(ENDPOINT, status="running")
    assert len(servers) >= n
    return [str(s["id"]) for s in servers[:n]]


def _stop(ids: list[str], guard: object, **extra: object) -> dict[str, object]:
    return {
        "action": "stop",
        "targets": {"endpoints": [ENDPOINT], "ids": ids},
        "guard": guard,
        "reason": "guard test",
        **extra,
    }


async def _run(api: Api, body: dict[str, object]) -> dict[str, object]:
    reply = await api.post("/v1/operations", body)
    assert reply.status == 202, reply.body
    return await api.wait(str(reply.body["id"]))


async def _assert_untouched(api: Api, ids: list[str]) -> None:
    running = {str(s["id"]) for s in await api.servers(ENDPOINT, status="running")}
    assert set(ids) <= running


async def test_a_looser_request_guard_is_refused_by_the_configured_limit(api: Api) -> None:
    ids = await _ids(api, 4)
    done = await _run(api, _stop(ids, {"max_servers": 100000, "max_percent": 100}))
    assert done["state"] == "refused", done
    reason = str(done["refused_reason"])
    assert reason.startswith("blast radius") and "max_servers 3" in reason
    assert done["guard"] == {"max_servers": 3, "max_percent": "50%"}
    await _assert_untouched(api, ids)


async def test_an_empty_request_guard_does_not_disable_the_configured_one(api: Api) -> None:
    ids = await _ids(api, 4)
    done = await _run(api, _stop(ids, {}))
    assert done["state"] == "refused", done
    assert "max_servers 3" in str(done["refused_reason"])
    assert done["guard"] == {"max_servers": 3, "max_percent": "50%"}
    await _assert_untouched(api, ids)


async def test_a_stricter_request_guard_applies_limit_by_limit(api: Api) -> None:
    ids = await _ids(api, 2)
    # the request's max_servers is stricter; the configured max_percent still holds
    done = await _run(api, _stop(ids, {"max_servers": 1}))
    assert done["state"] == "refused", done
    assert "max_servers 1" in str(done["refused_reason"])
    assert done["guard"] == {"max_servers": 1, "max_percent": "50%"}

    # the request's max_percent is stricter (2 of 16 servers > 5%); the configured max_servers holds
    done = await _run(api, _stop(ids, {"max_percent": 5}))
    assert done["state"] == "refused", done
    assert "max_percent 5%" in str(done["refused_reason"])
    assert done["guard"] == {"max_servers": 3, "max_percent": "5%"}
    await _assert_untouched(api, ids)

    # within both: it runs
    done = await _run(api, _stop(ids, {"max_servers": 2, "max_percent": 90}))
    assert done["state"] == "succeeded", done
    assert done["guard"] == {"max_servers": 2, "max_percent": "50%"}
