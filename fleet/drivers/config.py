"""Endpoint configuration and credentials as frozen values.

Configuration names where a secret lives (an environment variable or a file), never the secret
itself; the secret is read when a driver authenticates. Every credential object's `repr` hides the
secret, so a config dump or a traceback cannot leak it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fleet.domain import Provider


class ConfigError(ValueError):
    """A configuration that cannot work; the message names the field."""


@dataclass(frozen=True, repr=False)
class Secret:
    """A secret value that never shows itself in `repr`/`str`."""

    _value: str

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: an environment variable's NAME and/or a file's path (env wins)."""

    env: str | None = None
    file: str | None = None

    def resolve(self, environ: Mapping[str, str] | None = None) -> Secret:
        env = os.environ if environ is None else environ
        if self.env and env.get(self.env):
            return Secret(env[self.env])
        unset = f"environment variable {self.env} is not set" if self.env else None
        if self.file:
            try:
                text = Path(self.file).expanduser().read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                found = f"secret file {self.file} cannot be read: {reason}"
                raise ConfigError(f"{unset} and {found}" if unset else found) from None
            if not text:
                raise ConfigError(f"secret file {self.file} is empty")
            return Secret(text)
        raise ConfigError(unset or "no environment variable or file is named")


SecretSource = SecretRef | Secret


def resolve_secret(source: SecretSource, environ: Mapping[str, str] | None = None) -> Secret:
    return source if isinstance(source, Secret) else source.resolve(environ)


@dataclass(frozen=True)
class AkSkCredentials:
    """Huawei access key / secret key: requests are signed (SDK-HMAC-SHA256)."""

    ak: SecretSource
    sk: SecretSource


@dataclass(frozen=True)
class PasswordCredentials:
    """A user and password for a Keystone-style token (Huawei IAM or OpenStack Keystone).

    Huawei IAM: `user_domain_name` is the account name; the project is scoped by name or id.
    """

    username: str | None
    password: SecretSource
    user_id: str | None = None
    user_domain_name: str | None = None
    user_domain_id: str | None = None
    project_domain_name: str | None = None
    project_domain_id: str | None = None

    def __post_init__(self) -> None:
        if not self.username and not self.user_id:
            raise ConfigError("credentials: username or user_id is required")


Credentials = AkSkCredentials | PasswordCredentials


def check_secrets(creds: Credentials, environ: Mapping[str, str] | None = None) -> None:
    """Resolve every secret of `creds` once (at start); ConfigError names the secret and where
    it was looked for (the variable's name or the file's path, never a value)."""
    sources: tuple[tuple[str, SecretSource], ...] = (
        (("ak", creds.ak), ("sk", creds.sk))
        if isinstance(creds, AkSkCredentials)
        else (("password", creds.password),)
    )
    for name, source in sources:
        try:
            resolve_secret(source, environ)
        except ConfigError as exc:
            raise ConfigError(f"credentials.{name}: {exc}") from None


class Flavour:
    """Values of the `flavour` option of an `openstack` endpoint."""

    OPENSTACK = "openstack"
    EASYSTACK = "easystack"
    ALL = (OPENSTACK, EASYSTACK)


@dataclass(frozen=True)
class EndpointConfig:
    """One endpoint. Huawei endpoints use `iam_url`/`ecs_url`/`bms_url`; OpenStack ones `auth_url`
    (Keystone v3) with the compute URL discovered from the catalog unless `compute_url` is given."""

    name: str
    provider: Provider
    credentials: Credentials
    region: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    # Huawei
    iam_url: str | None = None
    ecs_url: str | None = None
    bms_url: str | None = None
    # OpenStack / EasyStack
    auth_url: str | None = None
    compute_url: str | None = None
    interface: str = "public"
    flavour: str = Flavour.OPENSTACK
    # HTTP hygiene
    timeout: float = 30.0
    connect_timeout: float = 10.0
    connection_limit: int = 16
    page_size: int = 1000
    read_retries: int = 2

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("endpoint: name is required")
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ConfigError(f"endpoint {self.name}: timeouts must be positive")
        if self.connection_limit < 1:
            raise ConfigError(f"endpoint {self.name}: connection_limit must be >= 1")
        if not 1 <= self.page_size <= 1000:
            raise ConfigError(f"endpoint {self.name}: page_size must be within 1..1000")
        check = _CHECKS.get(self.provider)
        if check is None:
            raise ConfigError(f"endpoint {self.name}: no driver for provider {self.provider!r}")
        check(self)


def _check_openstack(config: EndpointConfig) -> None:
    name = config.name
    if config.flavour not in Flavour.ALL:
        raise ConfigError(f"endpoint {name}: flavour must be one of {Flavour.ALL}")
    if not isinstance(config.credentials, PasswordCredentials):
        raise ConfigError(f"endpoint {name}: OpenStack needs password credentials")
    if not config.auth_url:
        raise ConfigError(f"endpoint {name}: auth_url is required")
    if not (config.project_id or config.project_name):
        raise ConfigError(f"endpoint {name}: project_name or project_id is required")


def _check_huawei(config: EndpointConfig) -> None:
    name = config.name
    if not config.ecs_url:
        raise ConfigError(f"endpoint {name}: ecs_url is required")
    if isinstance(config.credentials, AkSkCredentials):
        if not config.project_id:
            raise ConfigError(f"endpoint {name}: AK/SK signing needs project_id")
    else:
        if not config.iam_url:
            raise ConfigError(f"endpoint {name}: iam_url is required for password auth")
        if not (config.project_id or config.project_name or config.region):
            raise ConfigError(f"endpoint {name}: project_id, project_name or region is required")


def _check_huawei_bms(config: EndpointConfig) -> None:
    _check_huawei(config)
    if not config.bms_url:
        raise ConfigError(f"endpoint {config.name}: bms_url is required for huawei-bms")


_CHECKS: dict[Provider, Callable[[EndpointConfig], None]] = {
    Provider.HUAWEI_ECS: _check_huawei,
    Provider.HUAWEI_BMS: _check_huawei_bms,
    Provider.OPENSTACK: _check_openstack,
}
"""What each provider's endpoint needs (one entry per provider; none is anyone's default)."""
