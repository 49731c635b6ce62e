"""What both Nova v2.1 mounts share: the surface description, microversions, auth and lookups.

One Nova implementation serves two surfaces that differ only in documented details (api-digest §1.2,
§1.4, §3.0, §8): Huawei's native API at `/v2.1/{project_id}` on the ECS endpoint (Huawei IAM auth,
ECS and BMS servers mixed, max microversion 2.60, 1D tags, no keep-alive) and the EasyStack /
OpenStack API at `/compute/v2.1` (Keystone auth, recycle bin, `live_resize`). A `Surface` names
those differences so the handlers contain no dialect `if`s beyond reading its fields.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from aiohttp import web

from fleet.simulator import huawei_iam
from fleet.simulator.core import (
    HUAWEI_NOVA,
    KEYSTONE,
    OPENSTACK,
    SimContext,
    SimReply,
    admit,
    ctx_of,
    error_response,
    request_id_of,
)
from fleet.simulator.keystone import base_url
from fleet.simulator.world import BMS, ECS, Server
from fleet.simulator.world import OPENSTACK as OPENSTACK_KIND

Version = tuple[int, int]
MIN_VERSION: Version = (2, 1)
VERSION_KEY: web.RequestKey[tuple[int, int]] = web.RequestKey("nova_version", tuple)


@dataclass(frozen=True)
class Surface:
    """One mount of the Nova API and the documented ways it differs from the other."""

    name: str
    dialect: str  # error/throttle format (core dialect)
    rate_prefix: str  # rate keys are f"{rate_prefix}:{kind}"
    kinds: tuple[str, ...]  # which servers it shows
    max_version: Version
    default_page: int  # page size without `limit`
    recycle_bin: bool  # EasyStack: DELETE moves into the recycle bin
    tag_api: bool  # the 1D tag API and tag list filters (from 2.26; see OPENSTACK_SURFACE)
    live_resize: bool  # EasyStack: `live_resize` action
    keep_alive: bool  # Huawei native: "long HTTP connections cannot be used"
    embedded_flavor_id: bool  # EasyStack's >= 2.47 flavor example still carries `id`
    tag_chars: int = 60  # longest tag (upstream Nova 60; Huawei documents 80)

    def rate_key(self, kind: str) -> str:
        return f"{self.rate_prefix}:{kind}"

    @property
    def huawei(self) -> bool:
        """Huawei's native mount: its documented differences (stop `type`, status set, fuzzy
        flavor filter, tag filters matching a bare key) apply."""
        return self.name == "huawei"


HUAWEI_SURFACE = Surface(
    name="huawei",
    dialect=HUAWEI_NOVA,
    rate_prefix="huawei-nova",
    kinds=(ECS, BMS),
    max_version=(2, 60),
    default_page=25,
    recycle_bin=False,
    tag_api=True,
    live_resize=False,
    keep_alive=False,
    embedded_flavor_id=False,
    tag_chars=80,
)

OPENSTACK_SURFACE = Surface(
    name="openstack",
    dialect=OPENSTACK,
    rate_prefix="openstack",
    kinds=(OPENSTACK_KIND,),
    max_version=(2, 96),
    default_page=1000,
    recycle_bin=True,
    tag_api=True,
    live_resize=True,
    keep_alive=True,
    embedded_flavor_id=True,
)
"""EasyStack as the world file describes it (`tag_api`, default true): the EasyStack seed is
silent on the tag API but documents 2.52 tags at creation and `tags` in server bodies, so by
default it serves what upstream Nova serves at its advertised 2.96: `/servers/{id}/tags[/{tag}]`
and the `tags`, `tags-any`, `not-tags`, `not-tags-any` filters. An endpoint without the tag API
(`tag_api = false`) advertises 2.25 as its maximum, the last microversion before tags, so it never
advertises what it does not serve: no tag routes, no tags in bodies, tag filters ignored as Nova
ignores unknown parameters below 2.26."""
NO_TAG_API_MAX: Version = (2, 25)


def openstack_surface(tag_api: bool) -> Surface:
    """The EasyStack surface with or without the tag API."""
    if tag_api:
        return OPENSTACK_SURFACE
    return replace(OPENSTACK_SURFACE, tag_api=False, max_version=NO_TAG_API_MAX)


MAX_PAGE = 1000


@dataclass
class Call:
    """One authenticated, admitted request on a surface, with its negotiated microversion."""

    request: web.Request
    surface: Surface
    version: Version
    project_id: str

    @property
    def ctx(self) -> SimContext:
        return ctx_of(self.request)

    def at_least(self, major: int, minor: int) -> bool:
        return self.version >= (major, minor)

    @property
    def base(self) -> str:
        return base_url(self.request)

    @property
    def prefix(self) -> str:
        """The URL prefix of this surface for this project (without a trailing slash)."""
        if self.surface.name == "huawei":
            return f"/v2.1/{self.project_id}"
        return "/compute/v2.1"

    @functools.cached_property
    def versioned(self) -> str:
        """`base + prefix`: where the `self` links of this call point (once per call: a listing
        links thousands of servers)."""
        return f"{self.base}{self.prefix}"

    @functools.cached_property
    def unversioned(self) -> str:
        """Where `bookmark` links point: the versioned URL without `/v2.1`."""
        return self.versioned.replace("/v2.1", "", 1)


def fail(surface: Surface, status: int, message: str) -> SimReply:
    """The surface's error reply (Nova named envelope, e.g. `{"itemNotFound": {...}}`)."""
    return SimReply(error_response(surface.dialect, status, message))


def show_version(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


def _header_version(request: web.Request) -> str | None:
    """The requested microversion: `OpenStack-API-Version: compute X.Y` wins over the legacy one."""
    for part in request.headers.get("OpenStack-API-Version", "").split(","):
        words = part.split()
        if len(words) == 2 and words[0].lower() == "compute":
            return words[1]
    return request.headers.get("X-OpenStack-Nova-API-Version")


def negotiate(request: web.Request, surface: Surface) -> Version:
    """Parse the microversion headers (default 2.1): bad format 400, out of range 406."""
    raw = _header_version(request)
    if raw is None:
        version = MIN_VERSION
    elif raw.strip().lower() == "latest":
        version = surface.max_version
    else:
        match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", raw)
        if match is None:
            raise fail(surface, 400, f"API Version String {raw} is of invalid format.")
        version = (int(match[1]), int(match[2]))
        if not MIN_VERSION <= version <= surface.max_version:
            raise fail(
                surface,
                406,
                f"Version {raw.strip()} is not supported by the API. Minimum is "
                f"{show_version(MIN_VERSION)} and maximum is {show_version(surface.max_version)}.",
            )
    request[VERSION_KEY] = version
    return version


async def _authenticate(request: web.Request, surface: Surface) -> str:
    """Check the token; returns the project id the call works in."""
    if surface.name == "huawei":
        project_id = request.match_info["project_id"]
        await huawei_iam.authenticate(request, project_id, HUAWEI_NOVA)
        return project_id
    ctx = ctx_of(request)
    token = ctx.valid_token(request.headers.get("X-Auth-Token"), KEYSTONE)
    if token is None or not token.project_id:
        # keystonemiddleware answers before Nova, in Keystone's envelope (digest §5.1 ES-ECS).
        raise SimReply(
            error_response(KEYSTONE, 401, "The request you have made requires authentication.")
        )
    in_url = request.match_info.get("project_id")
    if in_url is not None and in_url != token.project_id:
        raise fail(
            surface,
            400,
            f"Malformed request URL: URL's project_id '{in_url}' doesn't match "
            f"Context's project_id '{token.project_id}'",
        )
    return token.project_id


async def open_call(
    request: web.Request,
    surface: Surface,
    kind: str,
    *,
    servers: tuple[str, ...] = (),
    action: str | None = None,
) -> Call:
    """Admit (log, faults, rate limit), authenticate and negotiate; every handler starts here."""
    await admit(
        request,
        dialect=surface.dialect,
        rate_key=surface.rate_key(kind),
        servers=list(servers),
        action=action,
    )
    project_id = await _authenticate(request, surface)
    version = negotiate(request, surface)
    return Call(request=request, surface=surface, version=version, project_id=project_id)


def owned(call: Call, server: Server) -> bool:
    """Is `server` one of this surface's servers in the caller's project?"""
    return server.kind in call.surface.kinds and server.project_id == call.project_id


def gone(call: Call, server: Server) -> bool:
    """Huawei: a deleted server is gone. EasyStack: it sits in the recycle bin until purged."""
    return server.deleted_at is not None and not call.surface.recycle_bin


def lookup(call: Call, server_id: str) -> Server:
    """The caller's server (recycled ones included on EasyStack), else Nova's 404."""
    server = call.ctx.world.servers.get(server_id)
    if server is None or not owned(call, server) or gone(call, server):
        raise fail(call.surface, 404, f"Instance {server_id} could not be found.")
    return server


def finish(response: web.StreamResponse, request: web.Request, surface: Surface) -> None:
    """Stamp the microversion headers and, on Huawei, refuse keep-alive (`Connection: close`)."""
    version = request.get(VERSION_KEY)
    if version is not None:
        shown = show_version(version)
        response.headers["OpenStack-API-Version"] = f"compute {shown}"
        response.headers["X-OpenStack-Nova-API-Version"] = shown
        response.headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"
    # Upstream Nova names every call's request id (instance actions record it).
    request_id = f"req-{request_id_of(request)}"
    response.headers["X-Openstack-Request-Id"] = request_id
    response.headers["X-Compute-Request-Id"] = request_id
    if not surface.keep_alive:
        response.force_close()
        response.headers["Connection"] = "close"


SurfaceHandler = Callable[[web.Request, Surface], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bind(surface: Surface, fn: SurfaceHandler) -> Handler:
    """An aiohttp handler for `fn` on `surface`, finishing normal and error replies alike."""

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            response = await fn(request, surface)
        except SimReply as reply:
            finish(reply.response, request, surface)
            raise
        finish(response, request, surface)
        return response

    handler.__doc__ = fn.__doc__
    return handler
