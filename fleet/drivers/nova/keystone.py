"""Keystone v3 password authentication and compute endpoint discovery from the service catalog.

EasyStack says the compute URL "must be taken from the identity service catalog entry of type
`compute` and must not be hard-coded"; the token response carries that catalog, so one token request
both authenticates and finds the endpoint (filtered by interface and region).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from fleet.drivers.auth import PasswordTokenFetcher
from fleet.drivers.config import ConfigError, PasswordCredentials, Secret
from fleet.drivers.jsonutil import as_dict, as_list, opt_str

KEYSTONE_API_CLASS = "keystone"


def identity_v3(auth_url: str) -> str:
    """`http://h/identity` and `http://h/identity/v3/` both -> `http://h/identity/v3`."""
    base = auth_url.rstrip("/")
    return base if base.endswith("/v3") else base + "/v3"


def _domain(name: str | None, domain_id: str | None) -> dict[str, object] | None:
    if domain_id:
        return {"id": domain_id}
    if name:
        return {"name": name}
    return None


def password_body(
    creds: PasswordCredentials,
    password: Secret,
    *,
    project_id: str | None,
    project_name: str | None,
) -> dict[str, object]:
    user: dict[str, object] = {"password": password.reveal()}
    if creds.user_id:
        user["id"] = creds.user_id
    else:
        user["name"] = creds.username
        user["domain"] = _domain(creds.user_domain_name, creds.user_domain_id) or {
            "name": "Default"
        }
    project: dict[str, object]
    if project_id:
        project = {"id": project_id}
    else:
        project = {
            "name": project_name,
            "domain": _domain(creds.project_domain_name, creds.project_domain_id)
            or {"name": "Default"},
        }
    return {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": project},
        }
    }


def compute_url(
    token_body: Mapping[str, object], *, interface: str = "public", region: str | None = None
) -> str:
    """The `compute` endpoint of the catalog for `interface` (and `region` when given)."""
    offered: list[str] = []
    for service in as_list(token_body.get("catalog")):
        entry = as_dict(service)
        if opt_str(entry.get("type")) != "compute":
            continue
        for raw in as_list(entry.get("endpoints")):
            ep = as_dict(raw)
            ep_region = opt_str(ep.get("region_id")) or opt_str(ep.get("region"))
            ep_interface = opt_str(ep.get("interface"))
            offered.append(f"{ep_interface}@{ep_region}")
            url = opt_str(ep.get("url"))
            if url and ep_interface == interface and (region is None or ep_region == region):
                return url.rstrip("/")
    raise ConfigError(
        f"no compute endpoint for interface {interface!r} region {region!r} in the catalog"
        f" (offered: {', '.join(offered) or 'none'})"
    )


class KeystoneTokenFetcher(PasswordTokenFetcher):
    """A project-scoped Keystone token (transport base URL: the identity v3 URL). Keystone's
    default lifetime is one hour; EasyStack does not document its own (A-38)."""

    SERVICE = "Keystone"
    PATH = "/auth/tokens"
    API_CLASS = KEYSTONE_API_CLASS
    LIFETIME = timedelta(hours=1)

    def body(self, password: Secret) -> dict[str, object]:
        return password_body(
            self._creds, password, project_id=self._project_id, project_name=self._project_name
        )
