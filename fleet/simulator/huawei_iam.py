"""Huawei IAM: password tokens (`POST /v3/auth/tokens`), projects, and the auth check of every path.

Every Huawei API path (ECS v1, BMS v1, jobs, and the native Nova v2.1 surface) calls
`authenticate()` first. It accepts either an IAM token (`X-Auth-Token`, digest §1.1) or an AK/SK
signature (`Authorization: SDK-HMAC-SHA256 ...` + `X-Sdk-Date`, see `aksk`).

Answers, and why they look the way they do:
- token missing, unknown or expired: 401 `Common.0013` "Invalid token." in the dialect's error
  shape (digest §5.3); a token scoped to another project: 400 `Ecs.0023`.
- bad AK/SK signature, unknown AK, stale `X-Sdk-Date`: 401 in the Huawei generic envelope
  `{"error_msg", "error_code", "request_id"}` (digest §5.1, "IAM/IMS style") with code
  `APIGW.0301` and message "Incorrect IAM authentication information: ...": these are refused by
  the API gateway in front of every service, so the body does not depend on the dialect. The
  code and wording come from the API Request Signing Guide that seed 001 §4.2 refers to.
- a signed request whose `X-Project-Id` (or URL project) is not the account's project: 400
  `Common.0018`.
- token request errors use the Keystone v3 shape `{"error": {"code": 401, "message", "title"}}`:
  Huawei IAM is the Keystone v3 token API (same request body), and that is the only documented
  shape for a refused Keystone token request (digest §5.1, ES-ECS row).

`GET /v3` answers the Keystone v3 version document (see `get_version`).

`GET /v3/auth/domains` (rate key `huawei-iam:domains`) answers the account's one domain to a token
or an AK/SK signature: the SDK's `GlobalCredentials` ask it for the domain id before calling a
global service such as TMS (`huawei_tms`).

Scopes: `{"project": {"name": <region>}}` (Huawei project names are region names) or
`{"project": {"id": <project_id>}}` give a project token; a domain scope or none gives a token
with no project, which every project URL then refuses with `Ecs.0023`.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime

from aiohttp import web

from fleet.simulator import aksk
from fleet.simulator.core import (
    HUAWEI,
    KEYSTONE,
    SimContext,
    SimReply,
    Token,
    admit,
    ctx_of,
    entry_of,
    error_response,
    json_response,
    read_json,
)

TOKEN_LIFETIME = 24 * 3600.0  # "The validity period of a token is 24 hours." (seed 001 §4.2)


@functools.lru_cache(maxsize=4096)
def _stable_id(*parts: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)).hex


def domain_id(ctx: SimContext) -> str:
    return _stable_id("domain", ctx.credentials.huawei_domain)


def user_id(ctx: SimContext) -> str:
    return _stable_id("user", ctx.credentials.huawei_domain, ctx.credentials.huawei_user)


def _request_id(request: web.Request) -> str:
    """The id the middleware will also send as `X-Request-Id` (so body and header agree)."""
    entry = entry_of(request)
    rid = entry.get("request_id")
    if not isinstance(rid, str):
        rid = f"{int(str(entry['seq'])):08x}{uuid.uuid4().hex[:24]}"
        entry["request_id"] = rid
    return rid


def gateway_refusal(request: web.Request, reason: str) -> SimReply:
    body = {
        "error_msg": f"Incorrect IAM authentication information: {reason}",
        "error_code": "APIGW.0301",
        "request_id": _request_id(request),
    }
    return SimReply(json_response(body, status=401))


async def verify_signature(request: web.Request) -> str:
    """Check the AK/SK signature of `request`; return the AK or raise the gateway's 401."""
    ctx = ctx_of(request)
    body = await request.read()
    try:
        return aksk.verify(
            method=request.method,
            raw_path=request.raw_path,
            query_string=request.query_string,
            headers=dict(request.headers),
            body=body,
            keys={ctx.credentials.huawei_ak: ctx.credentials.huawei_sk},
        )
    except aksk.SignatureError as exc:
        raise gateway_refusal(request, str(exc)) from None


async def authenticate(request: web.Request, project_id: str, dialect: str = HUAWEI) -> None:
    """Accept a valid `X-Auth-Token` for `project_id` or a valid AK/SK signature; else refuse.

    Refusals are raised as `SimReply` (see the module docstring for each answer).
    """
    ctx = ctx_of(request)
    entry = entry_of(request)
    if entry.get("dialect") is None:
        entry["dialect"] = dialect
    value = request.headers.get("X-Auth-Token")
    if value is not None:
        token = ctx.valid_token(value, HUAWEI)
        if token is None:
            raise SimReply(error_response(dialect, 401, "Invalid token.", "Common.0013"))
        if token.project_id != project_id:
            raise SimReply(
                error_response(
                    dialect,
                    400,
                    "project_id in token mismatches with project_id in url.",
                    "Ecs.0023",
                )
            )
        return
    if "Authorization" in request.headers:
        await verify_signature(request)
        header_project = request.headers.get("X-Project-Id", project_id)
        if project_id != ctx.world.huawei_project_id or header_project != project_id:
            raise SimReply(
                error_response(
                    dialect,
                    400,
                    "The project ID in the URL is different from that in the token.",
                    "Common.0018",
                )
            )
        return
    raise SimReply(error_response(dialect, 401, "Invalid token.", "Common.0013"))


def _keystone_error(status: int, message: str) -> SimReply:
    return SimReply(error_response(KEYSTONE, status, message))


def _field(data: object, *path: str) -> object:
    for name in path:
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data


def _check_password(ctx: SimContext, auth: object) -> None:
    methods = _field(auth, "identity", "methods")
    if not isinstance(methods, list) or "password" not in methods:
        raise _keystone_error(400, "auth.identity.methods must contain 'password'.")
    user = _field(auth, "identity", "password", "user")
    if not isinstance(user, dict):
        raise _keystone_error(400, "auth.identity.password.user is required.")
    c = ctx.credentials
    domain = user.get("domain")
    domain_ok = isinstance(domain, dict) and (
        domain.get("name") == c.huawei_domain or domain.get("id") == domain_id(ctx)
    )
    name_ok = user.get("name") == c.huawei_user or user.get("id") == user_id(ctx)
    if not (domain_ok and name_ok and user.get("password") == c.huawei_password):
        raise _keystone_error(401, "The username or password is wrong.")


def _scoped_project(ctx: SimContext, auth: object) -> str:
    """The project id the token is scoped to ("" for a domain scope or none)."""
    project = _field(auth, "scope", "project")
    if project is None:
        return ""
    if not isinstance(project, dict):
        raise _keystone_error(400, "auth.scope.project must be an object.")
    pid = ctx.world.huawei_project_id
    if project.get("id") == pid or project.get("name") == ctx.credentials.huawei_region:
        return pid
    raise _keystone_error(401, "The request you have made requires authentication.")


def _catalog(ctx: SimContext) -> list[dict[str, object]]:
    base, pid, region = ctx.base_url, ctx.world.huawei_project_id, ctx.credentials.huawei_region
    services = [
        ("ecs", "ecs", f"{base}/v1/{pid}"),
        ("compute", "nova", f"{base}/v2.1/{pid}"),
        ("bms", "bms", f"{base}/v1/{pid}"),
        ("identity", "iam", f"{base}/v3"),
    ]
    return [
        {
            "endpoints": [
                {
                    "id": _stable_id("endpoint", kind),
                    "interface": "public",
                    "region": region,
                    "region_id": region,
                    "url": url,
                }
            ],
            "id": _stable_id("service", kind),
            "name": name,
            "type": kind,
        }
        for kind, name, url in services
    ]


def _token_body(ctx: SimContext, token: Token) -> dict[str, object]:
    c = ctx.credentials
    domain = {"id": domain_id(ctx), "name": c.huawei_domain}
    body: dict[str, object] = {
        "expires_at": ctx.token_expiry(token),
        "issued_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z",
        "methods": ["password"],
        "catalog": _catalog(ctx),
        "roles": [{"id": _stable_id("role", "te_admin"), "name": "te_admin"}],
        "user": {"domain": domain, "id": user_id(ctx), "name": c.huawei_user},
    }
    if token.project_id:
        body["project"] = {"domain": domain, "id": token.project_id, "name": c.huawei_region}
    else:
        body["domain"] = domain
    return {"token": body}


async def post_token(request: web.Request) -> web.Response:
    """`POST /v3/auth/tokens`: 201, the token in `X-Subject-Token`, expiry 24 h."""
    ctx = ctx_of(request)
    await admit(request, dialect=HUAWEI, rate_key="huawei-iam:token", action="token")
    data = await read_json(request, KEYSTONE)
    auth = data.get("auth")
    if not isinstance(auth, dict):
        raise _keystone_error(400, "The request body must contain 'auth'.")
    _check_password(ctx, auth)
    token = ctx.issue_token(HUAWEI, _scoped_project(ctx, auth), TOKEN_LIFETIME)
    response = json_response(_token_body(ctx, token), status=201)
    response.headers["X-Subject-Token"] = token.value
    return response


async def get_projects(request: web.Request) -> web.Response:
    """`GET /v3/projects[?name=]` with any valid Huawei token or an AK/SK signature."""
    ctx = ctx_of(request)
    entry_of(request)["dialect"] = HUAWEI
    value = request.headers.get("X-Auth-Token")
    if value is not None:
        if ctx.valid_token(value, HUAWEI) is None:
            raise SimReply(error_response(HUAWEI, 401, "Invalid token.", "Common.0013"))
    elif "Authorization" in request.headers:
        await verify_signature(request)
    else:
        raise SimReply(error_response(HUAWEI, 401, "Invalid token.", "Common.0013"))
    await admit(request, dialect=HUAWEI, rate_key="huawei-iam:projects", action="list")
    did, pid = domain_id(ctx), ctx.world.huawei_project_id
    projects = [
        {
            "is_domain": False,
            "description": "",
            "links": {"self": f"{ctx.base_url}/v3/projects/{pid}"},
            "enabled": True,
            "id": pid,
            "parent_id": did,
            "domain_id": did,
            "name": ctx.credentials.huawei_region,
        }
    ]
    name = request.query.get("name")
    if name is not None:
        projects = [p for p in projects if p["name"] == name]
    return json_response({"links": {"self": f"{ctx.base_url}/v3/projects"}, "projects": projects})


# Huawei IAM's Keystone v3 version document, as the IAM SDK models it (huaweicloudsdkiam v3
# KeystoneShowVersionResponse -> `Version`: status, updated, links [{rel, href}], id "such as
# v3.6", media-types [{type, base}]).
_V3_ID, _V3_UPDATED = "v3.6", "2016-04-04T00:00:00Z"
_V3_MEDIA = [{"type": "application/vnd.openstack.identity-v3+json", "base": "application/json"}]


async def get_version(request: web.Request) -> web.Response:
    """`GET /v3`: the version document Keystone clients (keystoneauth) discover first. Public,
    as Keystone's: no token needed. Rate key `huawei-iam:versions`."""
    ctx = ctx_of(request)
    await admit(request, dialect=HUAWEI, rate_key="huawei-iam:versions", action="version")
    base = ctx.base_url or f"{request.scheme}://{request.host}"
    version = {
        "status": "stable",
        "updated": _V3_UPDATED,
        "links": [{"rel": "self", "href": f"{base}/v3/"}],
        "id": _V3_ID,
        "media-types": _V3_MEDIA,
    }
    return json_response({"version": version})


async def authenticate_global(request: web.Request) -> None:
    """For a path with no project (IAM, TMS): any valid Huawei token or AK/SK signature."""
    ctx = ctx_of(request)
    entry_of(request)["dialect"] = HUAWEI
    value = request.headers.get("X-Auth-Token")
    if value is not None:
        if ctx.valid_token(value, HUAWEI) is None:
            raise SimReply(error_response(HUAWEI, 401, "Invalid token.", "Common.0013"))
    elif "Authorization" in request.headers:
        await verify_signature(request)
    else:
        raise SimReply(error_response(HUAWEI, 401, "Invalid token.", "Common.0013"))


async def get_auth_domains(request: web.Request) -> web.Response:
    """`GET /v3/auth/domains`: the account's one domain (the SDK's `GlobalCredentials` call it to
    learn the domain id; shape of huaweicloudsdkiam's `KeystoneListAuthDomainsResponse`)."""
    ctx = ctx_of(request)
    await authenticate_global(request)
    await admit(request, dialect=HUAWEI, rate_key="huawei-iam:domains", action="list")
    did = domain_id(ctx)
    domain = {
        "id": did,
        "name": ctx.credentials.huawei_domain,
        "enabled": True,
        "description": "",
        "links": {"self": f"{ctx.base_url}/v3/domains/{did}"},
    }
    return json_response(
        {"domains": [domain], "links": {"self": f"{ctx.base_url}/v3/auth/domains"}}
    )


def setup(app: web.Application) -> None:
    """Register the IAM routes."""
    for path in ("/v3", "/v3/"):
        app.router.add_get(path, get_version, allow_head=False)
    app.router.add_post("/v3/auth/tokens", post_token)
    app.router.add_get("/v3/projects", get_projects)
    app.router.add_get("/v3/auth/domains", get_auth_domains)
