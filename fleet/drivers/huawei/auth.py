"""Huawei authentication: an IAM password token, or AK/SK signing of every request.

IAM (`POST /v3/auth/tokens`, 201, token in `X-Subject-Token`, valid 24 h) is scoped to the project
("ECS is a project-level service"); the token body also tells the project id when only its name is
configured. AK/SK signs the exact method, path, query, headers and body that are sent, and adds
`X-Project-Id` (required for AK/SK in multi-project accounts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import yarl

from fleet.drivers.auth import IssuedToken, PasswordTokenFetcher
from fleet.drivers.config import AkSkCredentials, PasswordCredentials, Secret, resolve_secret
from fleet.drivers.huawei import signing
from fleet.drivers.jsonutil import as_dict, opt_str

IAM_API_CLASS = "iam"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def iam_token_body(
    creds: PasswordCredentials, password: Secret, project_id: str | None, project_name: str | None
) -> dict[str, object]:
    """The documented IAM password body, project-scoped (api-digest 1.1)."""
    user: dict[str, object] = {"password": password.reveal()}
    if creds.user_id:
        user["id"] = creds.user_id
    else:
        user["name"] = creds.username
        domain = creds.user_domain_name
        user["domain"] = {"id": creds.user_domain_id} if creds.user_domain_id else {"name": domain}
    project: dict[str, object] = {"id": project_id} if project_id else {"name": project_name}
    return {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": project},
        }
    }


class IamTokenFetcher(PasswordTokenFetcher):
    """A project-scoped IAM token (whose transport's base URL is the IAM URL), valid 24 h."""

    SERVICE = "IAM"
    PATH = "/v3/auth/tokens"
    API_CLASS = IAM_API_CLASS
    LIFETIME = timedelta(hours=24)

    def body(self, password: Secret) -> dict[str, object]:
        return iam_token_body(self._creds, password, self._project_id, self._project_name)


def project_id_of(token: IssuedToken) -> str | None:
    return opt_str(as_dict(token.body.get("project")).get("id"))


class AkSkAuth:
    """Signs every request (SDK-HMAC-SHA256). A 401 is final: a signature cannot be refreshed."""

    def __init__(
        self,
        creds: AkSkCredentials,
        project_id: str,
        *,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._creds = creds
        self._project_id = project_id
        self._now = now

    def __repr__(self) -> str:
        return f"AkSkAuth(project_id={self._project_id!r})"

    async def headers(
        self, method: str, url: yarl.URL, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        added = {
            signing.DATE_HEADER: signing.sdk_date(self._now()),
            "X-Project-Id": self._project_id,
        }
        to_sign = {**headers, **added}
        added["Authorization"] = signing.authorization(
            ak=resolve_secret(self._creds.ak).reveal(),
            sk=resolve_secret(self._creds.sk).reveal(),
            method=method,
            path=url.raw_path,
            query=url.raw_query_string,
            headers=to_sign,
            body=body,
        )
        return added

    def invalidate(self, applied: Mapping[str, str]) -> bool:
        return False
