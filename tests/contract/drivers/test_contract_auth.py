"""Authentication against the simulator: AK/SK signatures, token sharing and refresh, keep-alive
rules, and no secret in any log line."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace

import aiohttp
import pytest
from structlog.testing import capture_logs

from fleet.domain import Action, ActionParams, Provider, Selector
from fleet.drivers.config import AkSkCredentials, PasswordCredentials, Secret
from fleet.drivers.errors import AuthError
from fleet.drivers.huawei.ecs import HuaweiEcsDriver
from tests.contract.drivers.conftest import (
    MakeEcs,
    MakeOs,
    RecordingGate,
    huawei_config,
    pick,
)
from tests.simulator_fixtures import Sim


def token_posts(sim: Sim) -> list[dict[str, object]]:
    return [e for e in sim.requests() if str(e["path"]).endswith("/auth/tokens")]


async def test_aksk_signed_calls_are_accepted_without_any_token(
    sim: Sim, make_ecs: MakeEcs
) -> None:
    driver = make_ecs(aksk=True)
    servers = [s async for s in driver.list_servers(Selector(tags_any={"env": ()}))]
    assert servers
    # a signed query string with a reserved character ("=" in the tag filter "env=prod")
    prod = [s async for s in driver.list_servers(Selector(tags_all={"env": "prod"}))]
    assert {s.id for s in prod} == {
        s.id for s in sim.world.visible("ecs") if s.tags.get("env") == "prod"
    }
    ids = pick(sim, "ecs", "ACTIVE", 2)
    sub = await driver.submit(Action.STOP, ids, ActionParams())
    sim.advance(120)
    assert (await driver.poll(sub)).finished
    assert token_posts(sim) == []
    assert all(e["status"] in (200, 204) for e in sim.requests())


async def test_a_wrong_secret_key_is_an_auth_error(
    sim: Sim, session: aiohttp.ClientSession
) -> None:
    config = huawei_config(sim, Provider.HUAWEI_ECS, aksk=True)
    wrong = AkSkCredentials(ak=Secret(sim.endpoints["huawei"]["ak"]), sk=Secret("wrong"))
    bad = HuaweiEcsDriver(dataclasses.replace(config, credentials=wrong), session)
    with pytest.raises(AuthError) as caught:
        await bad.get_server("anything")
    assert caught.value.code == "APIGW.0301"
    assert len(sim.requests()) == 1  # a signature is not refreshed and retried


async def test_concurrent_calls_share_one_token(sim: Sim, make_ecs: MakeEcs) -> None:
    driver = make_ecs()
    ids = [s.id for s in sim.world.visible("ecs")]
    await asyncio.gather(*(driver.get_server(i) for i in ids))
    assert len(token_posts(sim)) == 1


async def test_an_expired_token_is_refreshed_once(sim: Sim, make_ecs: MakeEcs) -> None:
    driver = make_ecs()
    (sid,) = pick(sim, "ecs", "ACTIVE", 1)
    await driver.get_server(sid)
    sim.ctx.tokens.clear()  # the cloud forgets every token
    await asyncio.gather(*(driver.get_server(sid) for _ in range(5)))
    assert len(token_posts(sim)) == 2
    assert sum(1 for e in sim.requests() if e["status"] == 401) >= 1


async def test_a_wrong_password_fails_without_looping(
    sim: Sim, session: aiohttp.ClientSession
) -> None:
    config = huawei_config(sim, Provider.HUAWEI_ECS)
    creds = PasswordCredentials(
        username="fleet-sim", password=Secret("wrong"), user_domain_name="fleet-sim-domain"
    )
    driver = HuaweiEcsDriver(dataclasses.replace(config, credentials=creds), session)
    with pytest.raises(AuthError):
        await driver.get_server("x")
    assert len(token_posts(sim)) == 1


async def test_keystone_token_refresh(sim: Sim, make_os: MakeOs) -> None:
    driver = make_os()
    (sid,) = pick(sim, "openstack", "ACTIVE", 1)
    await driver.get_server(sid)
    sim.ctx.tokens.clear()
    await driver.get_server(sid)
    assert len(token_posts(sim)) == 2


async def test_native_openstack_calls_close_the_connection(sim: Sim) -> None:
    """Seed 000: long connections cannot be used for Huawei's native OpenStack APIs."""
    seen: list[tuple[str, str | None]] = []

    async def on_start(
        _s: aiohttp.ClientSession, _c: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        seen.append((params.url.path, params.headers.get("Connection")))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        driver = HuaweiEcsDriver(huawei_config(sim, Provider.HUAWEI_ECS), session, RecordingGate())
        [s async for s in driver.list_servers(Selector(tags_all={"env": "prod"}))]
    native = [c for p, c in seen if p.startswith("/v2.1/")]
    v1 = [c for p, c in seen if p.startswith("/v1/")]
    assert native and set(native) == {"close"}
    assert v1 and set(v1) == {None}


async def test_no_secret_reaches_the_logs(sim: Sim, make_ecs: MakeEcs, make_os: MakeOs) -> None:
    hw, os_ = sim.endpoints["huawei"], sim.endpoints["openstack"]
    with capture_logs() as logs:
        for driver in (make_ecs(), make_ecs(aksk=True)):
            [s async for s in driver.list_servers(Selector())]
        [s async for s in make_os().list_servers(Selector())]
    text = repr(logs)
    assert "http_call_completed" in text and "token_issued" in text
    tokens = list(sim.ctx.tokens)
    assert tokens
    for secret in (hw["password"], hw["sk"], os_["password"], *tokens):
        assert secret not in text
    assert "Authorization" not in text and "X-Auth-Token" not in text
