"""Keystone-style tokens (Huawei IAM and OpenStack Keystone): fetched once, shared, refreshed.

A token is cached until shortly before it expires. Concurrent callers that find no valid token
wait on one lock, so a thousand sub-jobs starting at once cause one token request, not a thousand.
After a 401 the transport calls `invalidate` with the token it used: only if that is still the
current token is it dropped, so a burst of 401s from one expired token causes one refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import structlog
import yarl

from fleet.drivers.config import PasswordCredentials, Secret, resolve_secret
from fleet.drivers.errors import AuthError
from fleet.drivers.http import HttpRequest, Transport
from fleet.drivers.jsonutil import as_dict

log = structlog.get_logger("fleet.drivers")

TOKEN_HEADER = "X-Auth-Token"  # noqa: S105 (a header name, not a secret)


@dataclass(frozen=True)
class IssuedToken:
    """A token and what came with it. `body` is the token response (catalog, project)."""

    value: Secret
    expires_at: datetime
    body: Mapping[str, object]

    def __repr__(self) -> str:
        return f"IssuedToken(expires_at={self.expires_at.isoformat()})"


TokenFetcher = Callable[[], Awaitable[IssuedToken]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TokenAuth:
    """`X-Auth-Token` from a cached token; implements the transport's `Authenticator`."""

    def __init__(
        self,
        fetch: TokenFetcher,
        *,
        endpoint: str,
        margin: timedelta = timedelta(minutes=5),
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._fetch = fetch
        self._endpoint = endpoint
        self._margin = margin
        self._now = now
        self._token: IssuedToken | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"TokenAuth(endpoint={self._endpoint!r})"

    def _fresh(self, token: IssuedToken | None) -> bool:
        return token is not None and self._now() < token.expires_at - self._margin

    async def token(self) -> IssuedToken:
        current = self._token
        if current is not None and self._fresh(current):
            return current
        async with self._lock:
            current = self._token
            if current is not None and self._fresh(current):
                return current
            issued = await self._fetch()
            self._token = issued
            log.info(
                "token_issued", endpoint=self._endpoint, expires_at=issued.expires_at.isoformat()
            )
            return issued

    async def headers(
        self, method: str, url: yarl.URL, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        issued = await self.token()
        return {TOKEN_HEADER: issued.value.reveal()}

    def invalidate(self, applied: Mapping[str, str]) -> bool:
        used = applied.get(TOKEN_HEADER)
        if used is None:
            return False
        current = self._token
        if current is not None and current.value.reveal() == used:
            self._token = None
        return True


def parse_expiry(value: object, fallback: datetime) -> datetime:
    """Keystone `expires_at` (`2019-02-13T06:52:13.855000Z`) as an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        return fallback
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return fallback
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class PasswordTokenFetcher:
    """Fetches a project-scoped token with a password (`POST {PATH}`, 201, token in
    `X-Subject-Token`) through `transport`, whose base URL is the identity service. Subclasses
    name the service, its path, API class, request body and the lifetime assumed when the token
    names no expiry."""

    SERVICE: ClassVar[str]
    PATH: ClassVar[str]
    API_CLASS: ClassVar[str]
    LIFETIME: ClassVar[timedelta]

    def __init__(
        self,
        transport: Transport,
        creds: PasswordCredentials,
        *,
        project_id: str | None,
        project_name: str | None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._transport = transport
        self._creds = creds
        self._project_id = project_id
        self._project_name = project_name
        self._now = now

    def __repr__(self) -> str:
        return f"{type(self).__name__}(user={self._creds.username or self._creds.user_id!r})"

    def body(self, password: Secret) -> dict[str, object]:
        raise NotImplementedError

    async def __call__(self) -> IssuedToken:
        body = self.body(resolve_secret(self._creds.password))
        response = await self._transport.call(
            HttpRequest("POST", self.PATH, self.API_CLASS, json_body=body)
        )
        value = response.headers.get("x-subject-token")
        if not value:
            raise AuthError(
                f"{self.SERVICE} answered without X-Subject-Token",
                http_status=response.status,
                request_id=response.request_id,
            )
        token = as_dict(as_dict(response.data).get("token"))
        expires = parse_expiry(token.get("expires_at"), self._now() + self.LIFETIME)
        return IssuedToken(value=Secret(value), expires_at=expires, body=token)
