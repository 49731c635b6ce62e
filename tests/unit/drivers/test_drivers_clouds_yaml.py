"""OpenStack endpoints from clouds.yaml: OS_CLOUD, the usual file locations, secure.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.domain import Provider
from fleet.drivers.config import ConfigError, PasswordCredentials, Secret, SecretRef
from fleet.drivers.nova.clouds import endpoint_from_cloud, load_cloud

CLOUDS = """
clouds:
  es-prod:
    region_name: RegionOne
    interface: internal
    auth:
      auth_url: https://keystone.example:5000/v3
      username: ops
      project_name: fleet
      user_domain_name: Default
      project_domain_name: Default
  other:
    auth_type: token
    auth:
      auth_url: https://k/v3
"""

SECURE = """
clouds:
  es-prod:
    auth:
      password: from-secure-yaml
"""


def _write(tmp_path: Path, secure: bool) -> Path:
    path = tmp_path / "clouds.yaml"
    path.write_text(CLOUDS)
    if secure:
        (tmp_path / "secure.yaml").write_text(SECURE)
    return path


def test_entry_from_os_client_config_file_and_os_cloud(tmp_path: Path) -> None:
    path = _write(tmp_path, secure=True)
    env = {"OS_CLIENT_CONFIG_FILE": str(path), "OS_CLOUD": "es-prod"}
    config = endpoint_from_cloud("es", flavour="easystack", environ=env)
    assert config.provider is Provider.OPENSTACK
    assert config.flavour == "easystack"
    assert config.auth_url == "https://keystone.example:5000/v3"
    assert config.region == "RegionOne"
    assert config.interface == "internal"
    assert config.project_name == "fleet"
    creds = config.credentials
    assert isinstance(creds, PasswordCredentials)
    assert creds.username == "ops"
    assert creds.user_domain_name == "Default"
    assert isinstance(creds.password, Secret)
    assert creds.password.reveal() == "from-secure-yaml"
    assert "from-secure-yaml" not in repr(config)


def test_password_falls_back_to_os_password(tmp_path: Path) -> None:
    path = _write(tmp_path, secure=False)
    config = endpoint_from_cloud("es", "es-prod", path=path, environ={})
    creds = config.credentials
    assert isinstance(creds, PasswordCredentials)
    assert creds.password == SecretRef(env="OS_PASSWORD")


def test_errors_name_what_is_wrong(tmp_path: Path) -> None:
    path = _write(tmp_path, secure=False)
    with pytest.raises(ConfigError, match="OS_CLOUD"):
        load_cloud(None, path=path, environ={})
    with pytest.raises(ConfigError, match="no cloud named 'nope'"):
        load_cloud("nope", path=path, environ={})
    with pytest.raises(ConfigError, match="auth_type"):
        endpoint_from_cloud("x", "other", path=path, environ={})
    with pytest.raises(ConfigError, match="not a file"):
        load_cloud("es-prod", environ={"OS_CLIENT_CONFIG_FILE": str(tmp_path / "missing.yaml")})
