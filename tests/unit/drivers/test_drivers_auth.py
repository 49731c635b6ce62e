"""Token caching, the IAM/Keystone request bodies, catalog discovery, and secrets kept secret."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleet.domain import Provider
from fleet.drivers.auth import TOKEN_HEADER, IssuedToken, TokenAuth, parse_expiry
from fleet.drivers.config import (
    AkSkCredentials,
    ConfigError,
    EndpointConfig,
    PasswordCredentials,
    Secret,
    SecretRef,
)
from fleet.drivers.huawei.auth import iam_token_body
from fleet.drivers.nova.keystone import compute_url, identity_v3, password_body

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Fetcher:
    """Issues token-1, token-2, ... each valid for `lifetime`; counts calls."""

    def __init__(self, clock: Clock, lifetime: timedelta = timedelta(hours=1)) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0

    async def __call__(self) -> IssuedToken:
        self.calls += 1
        await asyncio.sleep(0)  # let concurrent callers pile up on the lock
        return IssuedToken(
            Secret(f"token-{self.calls}"), self.clock() + self.lifetime, {"project": {"id": "p"}}
        )


async def test_concurrent_callers_share_one_fetch() -> None:
    clock = Clock()
    fetch = Fetcher(clock)
    auth = TokenAuth(fetch, endpoint="e", now=clock)
    tokens = await asyncio.gather(*(auth.token() for _ in range(50)))
    assert fetch.calls == 1
    assert {t.value.reveal() for t in tokens} == {"token-1"}


async def test_refreshed_shortly_before_expiry() -> None:
    clock = Clock()
    fetch = Fetcher(clock)
    auth = TokenAuth(fetch, endpoint="e", now=clock, margin=timedelta(minutes=5))
    assert (await auth.token()).value.reveal() == "token-1"
    clock.now = T0 + timedelta(minutes=54)
    assert (await auth.token()).value.reveal() == "token-1"
    clock.now = T0 + timedelta(minutes=56)
    assert (await auth.token()).value.reveal() == "token-2"
    assert fetch.calls == 2


async def test_invalidate_drops_only_the_token_that_failed() -> None:
    clock = Clock()
    fetch = Fetcher(clock)
    auth = TokenAuth(fetch, endpoint="e", now=clock)
    first = await auth.headers("GET", None, {}, None)  # type: ignore[arg-type]
    assert first == {TOKEN_HEADER: "token-1"}
    # many requests fail with the same old token: one refresh only
    assert auth.invalidate(first)
    second = await auth.headers("GET", None, {}, None)  # type: ignore[arg-type]
    assert second == {TOKEN_HEADER: "token-2"}
    assert auth.invalidate(first)  # a late 401 for token-1 does not drop token-2
    assert (await auth.token()).value.reveal() == "token-2"
    assert fetch.calls == 2
    assert not auth.invalidate({})  # nothing was sent: nothing to refresh


def test_parse_expiry() -> None:
    assert parse_expiry("2019-02-13T06:52:13.855000Z", T0) == datetime(
        2019, 2, 13, 6, 52, 13, 855000, tzinfo=UTC
    )
    assert parse_expiry("garbage", T0) == T0
    assert parse_expiry(None, T0) == T0


def test_iam_body_is_project_scoped() -> None:
    creds = PasswordCredentials(username="u", password=Secret("pw"), user_domain_name="acct")
    body = iam_token_body(creds, Secret("pw"), None, "cn-north-1")
    assert body == {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"password": "pw", "name": "u", "domain": {"name": "acct"}}},
            },
            "scope": {"project": {"name": "cn-north-1"}},
        }
    }
    by_id = iam_token_body(creds, Secret("pw"), "p-1", "ignored")
    assert by_id["auth"]["scope"] == {"project": {"id": "p-1"}}  # type: ignore[index]


def test_keystone_body_defaults_domains() -> None:
    creds = PasswordCredentials(username="admin", password=Secret("pw"))
    body = password_body(creds, Secret("pw"), project_id=None, project_name="demo")
    auth = body["auth"]
    assert auth["identity"]["password"]["user"] == {  # type: ignore[index]
        "password": "pw",
        "name": "admin",
        "domain": {"name": "Default"},
    }
    assert auth["scope"] == {  # type: ignore[index]
        "project": {"name": "demo", "domain": {"name": "Default"}}
    }


def test_compute_url_from_catalog() -> None:
    body = {
        "catalog": [
            {"type": "identity", "endpoints": [{"interface": "public", "url": "http://k/v3"}]},
            {
                "type": "compute",
                "endpoints": [
                    {"interface": "internal", "region_id": "R1", "url": "http://int/v2.1"},
                    {"interface": "public", "region_id": "R2", "url": "http://r2/v2.1"},
                    {"interface": "public", "region_id": "R1", "url": "http://r1/v2.1/"},
                ],
            },
        ]
    }
    assert compute_url(body) == "http://r2/v2.1"
    assert compute_url(body, region="R1") == "http://r1/v2.1"
    assert compute_url(body, interface="internal") == "http://int/v2.1"
    with pytest.raises(ConfigError, match="offered"):
        compute_url(body, region="R9")
    assert identity_v3("http://h/identity") == "http://h/identity/v3"
    assert identity_v3("http://h/identity/v3/") == "http://h/identity/v3"


def test_secrets_never_show_in_repr(tmp_path: Path) -> None:
    secret_file = tmp_path / "sk"
    secret_file.write_text("s3cr3t-from-file\n")
    config = EndpointConfig(
        name="ecs-prod",
        provider=Provider.HUAWEI_ECS,
        credentials=AkSkCredentials(
            ak=SecretRef(env="FLEET_HW_AK"), sk=SecretRef(file=str(secret_file))
        ),
        project_id="p",
        ecs_url="https://ecs",
    )
    assert "s3cr3t" not in repr(config)
    resolved = SecretRef(file=str(secret_file)).resolve({})
    assert resolved.reveal() == "s3cr3t-from-file"
    assert "s3cr3t" not in repr(resolved) and "s3cr3t" not in str(resolved)
    assert SecretRef(env="X", file=str(secret_file)).resolve({"X": "from-env"}).reveal() == (
        "from-env"
    )
    with pytest.raises(ConfigError, match="environment variable MISSING is not set"):
        SecretRef(env="MISSING").resolve({})
    token = IssuedToken(Secret("tok-123"), T0, {})
    assert "tok-123" not in repr(token)


def test_config_validation_names_the_field() -> None:
    creds = PasswordCredentials(username="u", password=Secret("p"))
    with pytest.raises(ConfigError, match="ecs_url"):
        EndpointConfig(name="x", provider=Provider.HUAWEI_ECS, credentials=creds)
    with pytest.raises(ConfigError, match="bms_url"):
        EndpointConfig(
            name="x",
            provider=Provider.HUAWEI_BMS,
            credentials=creds,
            ecs_url="u",
            iam_url="i",
            project_name="p",
        )
    with pytest.raises(ConfigError, match="project_id"):
        EndpointConfig(
            name="x",
            provider=Provider.HUAWEI_ECS,
            credentials=AkSkCredentials(ak=Secret("a"), sk=Secret("s")),
            ecs_url="u",
        )
    with pytest.raises(ConfigError, match="auth_url"):
        EndpointConfig(name="x", provider=Provider.OPENSTACK, credentials=creds, project_name="p")
    with pytest.raises(ConfigError, match="flavour"):
        EndpointConfig(
            name="x",
            provider=Provider.OPENSTACK,
            credentials=creds,
            project_name="p",
            auth_url="a",
            flavour="rackspace",
        )
