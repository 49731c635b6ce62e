"""OpenStack identity (Keystone v3) at `/identity`: version documents and project-scoped tokens.

EasyStack authenticates exactly like Keystone (api-digest §1.4): `POST /v3/auth/tokens` answers 201
with the token in `X-Subject-Token` and a body whose service catalog is the only place a client may
learn the compute URL from. The official OpenStack clients discover versions first (`GET /v3`) and
retry discovery several times when the document is missing, so both version documents are served.
Errors use Keystone's own envelope `{"error": {"code": int, "message", "title"}}` (digest §5.1).
"""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime

from aiohttp import web

from fleet.simulator.core import (
    KEYSTONE,
    SimContext,
    SimReply,
    Token,
    admit,
    ctx_of,
    error_response,
    json_response,
    read_json,
)

_DEFAULT_DOMAIN_ID = "default"
_UNAUTHORIZED = "The request you have made requires authentication."
_V3_MEDIA = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]


@functools.lru_cache(maxsize=4096)
def stable_id(*parts: str) -> str:
    """A 32-hex id derived from names, so the same world always has the same user/service ids."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]


def user_id(ctx: SimContext) -> str:
    """The id of the simulator's one OpenStack user (also `user_id` in its servers' bodies)."""
    return stable_id("keystone-user", ctx.credentials.os_user)


def base_url(request: web.Request) -> str:
    """Where the simulator is reachable: the configured base URL, else the request's origin."""
    base = ctx_of(request).base_url
    return base or f"{request.scheme}://{request.host}"


def _v3_document(base: str) -> dict[str, object]:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
        "media-types": _V3_MEDIA,
    }


async def get_root(request: web.Request) -> web.Response:
    """`GET /identity`: 300 Multiple Choices listing v3, as Keystone's unversioned endpoint does."""
    await admit(request, dialect=KEYSTONE, rate_key="keystone:versions")
    body = {"versions": {"values": [_v3_document(base_url(request))]}}
    return json_response(body, status=300)


async def get_v3(request: web.Request) -> web.Response:
    """`GET /identity/v3`: the v3 version document used by client discovery."""
    await admit(request, dialect=KEYSTONE, rate_key="keystone:versions")
    return json_response({"version": _v3_document(base_url(request))})


def _unauthorized() -> SimReply:
    return SimReply(error_response(KEYSTONE, 401, _UNAUTHORIZED))


def _bad_request(message: str) -> SimReply:
    return SimReply(error_response(KEYSTONE, 400, message))


def _obj(parent: object, key: str) -> dict[str, object]:
    """`parent[key]` as a dict (missing -> empty); anything else is Keystone's 400."""
    value = parent.get(key, {}) if isinstance(parent, dict) else None
    if not isinstance(value, dict):
        raise _bad_request(f"Invalid input for field '{key}': not an object.")
    return value


def _domain_matches(ctx: SimContext, domain: dict[str, object]) -> bool:
    """A user/project domain given by id (`default`) or by name (the configured domain name)."""
    if "id" in domain:
        return domain["id"] == _DEFAULT_DOMAIN_ID
    return domain.get("name") == ctx.credentials.os_domain


def _check_password(ctx: SimContext, identity: dict[str, object]) -> None:
    user = _obj(_obj(identity, "password"), "user")
    if "id" in user:
        known = user["id"] == user_id(ctx)
    else:
        known = user.get("name") == ctx.credentials.os_user and _domain_matches(
            ctx, _obj(user, "domain")
        )
    if not known or user.get("password") != ctx.credentials.os_password:
        raise _unauthorized()


def _check_identity(ctx: SimContext, identity: dict[str, object]) -> list[str]:
    """Verify the `password` or `token` method; returns the methods for the token body."""
    methods = identity.get("methods")
    if not isinstance(methods, list) or not methods:
        raise _bad_request("Invalid input for field 'identity/methods': expected a list.")
    if "password" in methods:
        _check_password(ctx, identity)
    elif "token" in methods:
        given = _obj(identity, "token").get("id")
        if not isinstance(given, str) or ctx.valid_token(given, KEYSTONE) is None:
            raise _unauthorized()
    else:
        raise _unauthorized()
    return [str(m) for m in methods]


def _scoped_project(ctx: SimContext, auth: dict[str, object]) -> str:
    """The project id the token is scoped to ("" for an unscoped token); 401 if not ours."""
    if "scope" not in auth:
        return ""
    scope = _obj(auth, "scope")
    if "project" not in scope:
        raise _unauthorized()  # domain and system scopes do not exist in the simulator
    project = _obj(scope, "project")
    ours = ctx.world.openstack_project_id
    if "id" in project:
        ok = project["id"] == ours
    else:
        ok = project.get("name") == ctx.credentials.os_project and _domain_matches(
            ctx, _obj(project, "domain")
        )
    if not ok:
        raise _unauthorized()
    return ours


def _endpoints(ctx: SimContext, service: str, url: str) -> list[dict[str, object]]:
    region = ctx.credentials.os_region
    return [
        {
            "id": stable_id("endpoint", service, interface),
            "interface": interface,
            "region_id": region,
            "region": region,
            "url": url,
        }
        for interface in ("public", "internal", "admin")
    ]


def catalog(ctx: SimContext, base: str) -> list[dict[str, object]]:
    """The service catalog: compute at `B/compute/v2.1` (no project id, as EasyStack's examples)."""
    return [
        {
            "id": stable_id("service", "compute"),
            "type": "compute",
            "name": "nova",
            "endpoints": _endpoints(ctx, "compute", f"{base}/compute/v2.1"),
        },
        {
            "id": stable_id("service", "identity"),
            "type": "identity",
            "name": "keystone",
            "endpoints": _endpoints(ctx, "identity", f"{base}/identity"),
        },
    ]


def _stamp(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}Z"


def token_body(ctx: SimContext, token: Token, methods: list[str], base: str) -> dict[str, object]:
    """The `token` object of a create/validate answer (fields listed in the library notes)."""
    c = ctx.credentials
    domain = {"id": _DEFAULT_DOMAIN_ID, "name": c.os_domain}
    body: dict[str, object] = {
        "methods": methods,
        "user": {
            "id": user_id(ctx),
            "name": c.os_user,
            "domain": domain,
            "password_expires_at": None,
        },
        "audit_ids": [stable_id("audit", token.value)[:22]],
        "issued_at": _stamp(ctx.world.clock.now()),
        "expires_at": ctx.token_expiry(token),
    }
    if token.project_id:
        body["project"] = {
            "id": token.project_id,
            "name": c.os_project,
            "domain": domain,
        }
        body["is_domain"] = False
        body["roles"] = [
            {"id": stable_id("role", "admin"), "name": "admin"},
            {"id": stable_id("role", "member"), "name": "member"},
        ]
        body["catalog"] = catalog(ctx, base)
    return {"token": body}


async def post_tokens(request: web.Request) -> web.Response:
    """`POST /identity/v3/auth/tokens`: 201 + `X-Subject-Token`, or Keystone's 401/400."""
    await admit(request, dialect=KEYSTONE, rate_key="keystone:token")
    ctx = ctx_of(request)
    data = await read_json(request, KEYSTONE)
    auth = _obj(data, "auth")
    methods = _check_identity(ctx, _obj(auth, "identity"))
    project_id = _scoped_project(ctx, auth)
    token = ctx.issue_token(KEYSTONE, project_id)
    body = token_body(ctx, token, methods, base_url(request))
    resp = json_response(body, status=201)
    resp.headers["X-Subject-Token"] = token.value
    return resp


def _subject(request: web.Request) -> Token:
    """Check the caller's `X-Auth-Token` and return the token named by `X-Subject-Token`."""
    ctx = ctx_of(request)
    if ctx.valid_token(request.headers.get("X-Auth-Token"), KEYSTONE) is None:
        raise _unauthorized()
    subject = ctx.valid_token(request.headers.get("X-Subject-Token"), KEYSTONE)
    if subject is None:
        raise SimReply(
            error_response(KEYSTONE, 404, "Could not find token: the token is not valid.")
        )
    return subject


async def get_token(request: web.Request) -> web.Response:
    """`GET /identity/v3/auth/tokens`: validate a token (same body as at issue)."""
    await admit(request, dialect=KEYSTONE, rate_key="keystone:validate")
    subject = _subject(request)
    ctx = ctx_of(request)
    body = token_body(ctx, subject, ["password"], base_url(request))
    resp = json_response(body)
    resp.headers["X-Subject-Token"] = subject.value
    return resp


async def delete_token(request: web.Request) -> web.Response:
    """`DELETE /identity/v3/auth/tokens`: revoke the subject token (204)."""
    await admit(request, dialect=KEYSTONE, rate_key="keystone:validate")
    subject = _subject(request)
    ctx_of(request).tokens.pop(subject.value, None)
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    """Register the identity routes under `/identity`."""
    r = app.router
    for path in ("/identity", "/identity/"):
        r.add_get(path, get_root, allow_head=False)
    for path in ("/identity/v3", "/identity/v3/"):
        r.add_get(path, get_v3, allow_head=False)
    r.add_post("/identity/v3/auth/tokens", post_tokens)
    r.add_get("/identity/v3/auth/tokens", get_token, allow_head=False)
    r.add_delete("/identity/v3/auth/tokens", delete_token)
