"""OpenStack endpoints from a standard `clouds.yaml` entry.

The file is found the way OpenStack clients find it: `OS_CLIENT_CONFIG_FILE`, then `./clouds.yaml`,
`~/.config/openstack/clouds.yaml`, `/etc/openstack/clouds.yaml`; a `secure.yaml` next to it (or
`OS_CLIENT_SECURE_FILE`) is merged over it, which is where passwords usually live. The cloud is the
one named, else `OS_CLOUD`. A password may be left out of both files and given by `OS_PASSWORD`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from fleet.domain import Provider
from fleet.drivers.config import (
    ConfigError,
    EndpointConfig,
    Flavour,
    PasswordCredentials,
    Secret,
    SecretRef,
    SecretSource,
)
from fleet.drivers.jsonutil import as_dict, opt_str

_PASSWORD_AUTH_TYPES = (None, "password", "v3password")


def search_paths(name: str = "clouds.yaml") -> list[Path]:
    return [
        Path.cwd() / name,
        Path("~/.config/openstack").expanduser() / name,
        Path("/etc/openstack") / name,
    ]


def find_file(environ: Mapping[str, str], env_var: str, name: str) -> Path | None:
    explicit = environ.get(env_var)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{env_var}={explicit!r} is not a file")
        return path
    return next((p for p in search_paths(name) if p.is_file()), None)


def _read_yaml(path: Path) -> dict[str, object]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    return as_dict(data)


def _merge(base: dict[str, object], over: dict[str, object]) -> dict[str, object]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(as_dict(merged[key]), as_dict(value))
        else:
            merged[key] = value
    return merged


def load_cloud(
    cloud: str | None = None,
    *,
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """The merged entry of `cloud` (or `OS_CLOUD`) from clouds.yaml (+ secure.yaml)."""
    env = os.environ if environ is None else environ
    name = cloud or env.get("OS_CLOUD")
    if not name:
        raise ConfigError("no cloud named (give one, or set OS_CLOUD)")
    clouds_file = path or find_file(env, "OS_CLIENT_CONFIG_FILE", "clouds.yaml")
    if clouds_file is None:
        raise ConfigError("no clouds.yaml found (OS_CLIENT_CONFIG_FILE or the usual locations)")
    entry = as_dict(as_dict(_read_yaml(clouds_file).get("clouds")).get(name))
    if not entry:
        raise ConfigError(f"{clouds_file}: no cloud named {name!r}")
    secure_file = (
        Path(env["OS_CLIENT_SECURE_FILE"]).expanduser()
        if env.get("OS_CLIENT_SECURE_FILE")
        else clouds_file.with_name("secure.yaml")
    )
    if secure_file.is_file():
        secure = as_dict(as_dict(_read_yaml(secure_file).get("clouds")).get(name))
        entry = _merge(entry, secure)
    return entry


def endpoint_from_cloud(
    endpoint: str,
    cloud: str | None = None,
    *,
    flavour: str = Flavour.OPENSTACK,
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    connection_limit: int = 16,
) -> EndpointConfig:
    """An `openstack` endpoint configured from a clouds.yaml entry."""
    env = os.environ if environ is None else environ
    entry = load_cloud(cloud, path=path, environ=env)
    auth_type = opt_str(entry.get("auth_type"))
    if auth_type not in _PASSWORD_AUTH_TYPES:
        raise ConfigError(f"cloud {cloud!r}: auth_type {auth_type!r} is not supported (password)")
    auth = as_dict(entry.get("auth"))
    auth_url = opt_str(auth.get("auth_url"))
    if not auth_url:
        raise ConfigError(f"cloud {cloud!r}: auth.auth_url is required")
    secret = opt_str(auth.get("password"))
    password: SecretSource = Secret(secret) if secret else SecretRef(env="OS_PASSWORD")
    domain = opt_str(auth.get("domain_name"))
    creds = PasswordCredentials(
        username=opt_str(auth.get("username")),
        user_id=opt_str(auth.get("user_id")),
        password=password,
        user_domain_name=opt_str(auth.get("user_domain_name")) or domain,
        user_domain_id=opt_str(auth.get("user_domain_id")),
        project_domain_name=opt_str(auth.get("project_domain_name")) or domain,
        project_domain_id=opt_str(auth.get("project_domain_id")),
    )
    return EndpointConfig(
        name=endpoint,
        provider=Provider.OPENSTACK,
        credentials=creds,
        region=opt_str(entry.get("region_name")),
        project_id=opt_str(auth.get("project_id")),
        project_name=opt_str(auth.get("project_name")),
        auth_url=auth_url,
        interface=opt_str(entry.get("interface")) or "public",
        flavour=flavour,
        timeout=timeout,
        connection_limit=connection_limit,
    )
