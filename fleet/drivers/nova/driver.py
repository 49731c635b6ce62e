"""OpenStack Nova v2.1 and EasyStack: per-server actions, completion read from the server.

Keystone v3 gives the token and, from its catalog, the compute URL (unless `compute_url` is
configured). On first use of the compute URL the driver reads the endpoint's version document
(`discovery`): every compute call then sends min(2.26, the advertised maximum) as its microversion
(2.26: tags in bodies and tag filters), and the tag API, the tag filters and the `tag_add` /
`tag_remove` offers are there iff the cloud serves 2.26. The service does this at start-up
(`discover`), so the capabilities admission reads are the cloud's; before that they are the
flavour's static declaration. No action batches: one call per server, and a poll reads the server
until it settles in the target status with no task state. EasyStack's differences are
`NovaQuirks` flags chosen by the endpoint's `flavour`.
Flavors: `GET {compute}/flavors/detail`, ids only (a resize sends `params.flavor` as `flavorRef`,
which Nova resolves as an id, so a flavor name is not a valid target), cached for a few minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime

import aiohttp
import structlog

from fleet.domain import Action, ActionParams, Provider, Selector, ServerRef, ServerStatus
from fleet.drivers.actions import ActionSpec, Capabilities
from fleet.drivers.auth import TokenAuth
from fleet.drivers.base import (
    CreateRequest,
    FlavorCache,
    InstanceAction,
    PollResult,
    Quota,
    RequestGate,
    Submission,
    UnlimitedGate,
    check_batch,
    created_selector,
    servers_by_id,
    shows_each,
)
from fleet.drivers.config import ConfigError, EndpointConfig, PasswordCredentials
from fleet.drivers.errors import NotFound, Permanent, Unsupported
from fleet.drivers.http import (
    CloudClock,
    HttpRequest,
    HttpResponse,
    NoAuth,
    Transport,
    seg,
)
from fleet.drivers.nova import create as cr
from fleet.drivers.nova import polling
from fleet.drivers.nova import requests as rq
from fleet.drivers.nova.capabilities import (
    ACTION,
    DELETE,
    FLAVORS,
    LIST,
    SHOW,
    TAGS,
    VERSIONS,
    capabilities_for,
)
from fleet.drivers.nova.discovery import ComputeVersion, discover
from fleet.drivers.nova.errors import classify
from fleet.drivers.nova.keystone import KeystoneTokenFetcher, compute_url, identity_v3
from fleet.drivers.nova.polling import cloud_time
from fleet.drivers.novacommon import (
    MICROVERSION_HEADERS,
    flavor_table,
    instance_actions_path,
    paged,
    parse_server,
    raw_tags,
    read_instance_actions,
    tags_to_remove,
)
from fleet.drivers.query import QueryValue
from jobs.seen import SeenIds

log = structlog.get_logger("fleet.drivers")
__all__ = ["OpenStackDriver", "capabilities_for"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class OpenStackDriver:
    def __init__(
        self,
        config: EndpointConfig,
        session: aiohttp.ClientSession,
        gate: RequestGate | None = None,
        *,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        creds = config.credentials
        if not isinstance(creds, PasswordCredentials):
            raise ConfigError(f"endpoint {config.name}: OpenStack needs password credentials")
        self._config = config
        self._session = session
        self._gate = gate or UnlimitedGate()
        self.quirks = rq.quirks_for(config.flavour)  # the flavour's until `discover` reads more
        self._caps = capabilities_for(self.quirks)
        self._headers: Mapping[str, str] = MICROVERSION_HEADERS
        self.version: ComputeVersion | None = None  # what the version document said
        identity = self._transport(identity_v3(config.auth_url or ""), NoAuth())
        fetch = KeystoneTokenFetcher(
            identity, creds, project_id=config.project_id, project_name=config.project_name, now=now
        )
        self._auth = TokenAuth(fetch, endpoint=config.name, now=now)
        self._compute: Transport | None = None
        self._compute_lock = asyncio.Lock()
        self._clock = CloudClock()  # compute's clock (Keystone's is another host's)
        self._flavors = FlavorCache()

    def __repr__(self) -> str:
        return f"OpenStackDriver(endpoint={self.endpoint!r}, flavour={self._config.flavour!r})"

    def _transport(self, base: str, auth: NoAuth | TokenAuth) -> Transport:
        cfg = self._config
        return Transport(
            session=self._session,
            gate=self._gate,
            endpoint=cfg.name,
            base_url=base,
            classify=classify,
            auth=auth,
            timeout=cfg.timeout,
            connect_timeout=cfg.connect_timeout,
            read_retries=cfg.read_retries,
        )

    async def compute(self) -> Transport:
        """The compute transport, its URL from config or the token's catalog, and what the
        endpoint's version document says (both found once; a failure is tried again next use)."""
        if self._compute is not None:
            return self._compute
        async with self._compute_lock:
            if self._compute is None:
                url = self._config.compute_url
                if not url:
                    token = await self._auth.token()
                    url = compute_url(
                        token.body, interface=self._config.interface, region=self._config.region
                    )
                transport = self._transport(url, self._auth)
                transport.clock = self._clock
                self._learn(await discover(url, self._version_document))
                self._compute = transport
            return self._compute

    async def discover(self) -> None:
        """Find the compute URL and read its version document now (at start-up), so the
        capabilities say what this cloud serves before anyone reads them."""
        await self.compute()

    async def _version_document(self, root: str) -> HttpResponse:
        return await self._transport(root, self._auth).call(HttpRequest("GET", "", VERSIONS))

    def _learn(self, found: ComputeVersion | None) -> None:
        """Send min(2.26, the advertised maximum); tags iff the cloud serves 2.26 (see
        `discovery`). No document: the flavour's declaration and 2.26 stay, as before."""
        if found is None:
            log.warning("compute_version_unknown", endpoint=self.endpoint, microversion="2.26")
            return
        self.version = found
        sent = found.microversion
        self._headers = {} if sent is None else {"X-OpenStack-Nova-API-Version": sent}
        self.quirks = rq.discovered(self.quirks, found.tag_api, found.describe())
        self._caps = capabilities_for(self.quirks)
        log.info(
            "compute_version",
            endpoint=self.endpoint,
            max_version=found.describe(),
            microversion=sent,
            tag_api=found.tag_api,
        )

    async def check_credentials(self) -> None:
        """The credentials work: a Keystone token (the cached one while it is fresh: no call)."""
        await self._auth.token()

    @property
    def endpoint(self) -> str:
        return self._config.name

    @property
    def provider(self) -> Provider:
        return Provider.OPENSTACK

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    def _dialect(self) -> str:
        return self._caps.dialect

    def max_batch(self, action: Action) -> int:
        return self._caps.spec(action).max_batch

    def check(self, action: Action, params: ActionParams) -> None:
        if action in (Action.TAG_ADD, Action.TAG_REMOVE) and not self.quirks.tag_api:
            raise Unsupported(f"{self._dialect()}: {self.quirks.no_tags}", field="action")
        self._caps.spec(action)
        self._body(action, params)  # raises on what the dialect cannot express

    def _body(self, action: Action, params: ActionParams) -> dict[str, object] | None:
        if action is Action.START:
            return rq.start_body(self.quirks)
        if action is Action.STOP:
            return rq.stop_body(self.quirks, params)
        if action is Action.REBOOT:
            return rq.reboot_body(params)
        if action is Action.RESIZE:
            return rq.resize_body(self.quirks, params)
        if action is Action.CONFIRM_RESIZE:
            return rq.confirm_resize_body()
        if action is Action.REVERT_RESIZE:
            return rq.revert_resize_body()
        if action in (Action.TAG_ADD, Action.TAG_REMOVE) and not params.tags:
            raise Permanent("a tag action needs at least one tag")
        if action is Action.CREATE:
            cr.check_tags(params.tags, tags_in_body=self._tags_at_create)
        return None

    async def _call(
        self,
        method: str,
        path: str,
        api_class: str,
        *,
        body: object = None,
        query: Sequence[tuple[str, QueryValue]] = (),
        server_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        transport = await self.compute()
        return await transport.call(
            HttpRequest(
                method,
                path,
                api_class,
                query=query,
                json_body=body,
                server_ids=(server_id,) if server_id else (),
                headers=self._headers if headers is None else headers,
            )
        )

    # --- reading -----------------------------------------------------------------------------

    async def get_server(self, server_id: str) -> ServerRef:
        response = await self._call("GET", f"/servers/{seg(server_id)}", SHOW, server_id=server_id)
        data = response.data if isinstance(response.data, dict) else {}
        return parse_server(data.get("server"), endpoint=self.endpoint, provider=self.provider)

    async def cloud_clock(self) -> datetime | None:
        if self._clock.latest is None:
            await self._call("GET", "/flavors", FLAVORS, query=[("limit", 1)])
        return self._clock.latest

    async def instance_actions(self, server_id: str) -> list[InstanceAction] | None:
        """The server's `os-instance-actions` (upstream Nova; a cloud answering 404 keeps none
        we can read)."""
        path = instance_actions_path(seg(server_id))
        return await read_instance_actions(
            lambda: self._call("GET", path, SHOW, server_id=server_id)
        )

    async def flavors(self) -> frozenset[str]:
        """The flavor ids of `/flavors/detail` (what `flavorRef` takes)."""
        return frozenset(await self.flavor_table())

    async def flavor_table(self) -> Mapping[str, str]:
        """id -> name of every flavor (a request may name a flavor by either; the driver sends
        the id)."""
        return await self._flavors.get(self._fetch_flavors)

    async def _fetch_flavors(self) -> Mapping[str, str]:
        return await flavor_table(
            await self.compute(),
            "/flavors/detail",
            api_class=FLAVORS,
            page_size=self._config.page_size,
            headers=self._headers,
        )

    async def server_pages(
        self, query: Sequence[tuple[str, QueryValue]]
    ) -> AsyncGenerator[object, None]:
        """The bodies of `GET /servers/detail?{query}`, page by page (close it when done)."""
        return paged(
            await self.compute(),
            "/servers/detail",
            "servers",
            api_class=LIST,
            page_size=self._config.page_size,
            query=query,
            headers=self._headers,
        )

    async def list_servers(self, selector: Selector) -> AsyncIterator[ServerRef]:
        if shows_each(selector):
            async for server in servers_by_id(selector, self.get_server):
                yield server
            return
        seen = SeenIds()
        await self.compute()  # the tag filters depend on what the version document said
        pages = await self.server_pages(rq.list_query(selector, self.quirks))
        async with contextlib.aclosing(pages):  # a consumer that stops early closes the pager
            async for body in pages:
                server = parse_server(body, endpoint=self.endpoint, provider=self.provider)
                if selector.matches(server) and seen.add(server.id):
                    yield server

    # --- acting --------------------------------------------------------------------------------

    async def submit(self, action: Action, ids: Sequence[str], params: ActionParams) -> Submission:
        self.check(action, params)
        spec: ActionSpec = self._caps.actions[action]
        check_batch(spec, ids)
        server_id = ids[0]
        path = f"/servers/{seg(server_id)}"
        if action is Action.DELETE:
            response = await self._call("DELETE", path, DELETE, server_id=server_id)
        elif action in (Action.TAG_ADD, Action.TAG_REMOVE):
            await self._tags(action, server_id, params)
            return Submission(action, (server_id,), TAGS, done=True)
        else:
            body = self._body(action, params)
            response = await self._call(
                "POST", f"{path}/action", ACTION, body=body, server_id=server_id
            )
        return Submission(
            action,
            (server_id,),
            spec.api_class,
            request_id=response.request_id,
            flavor=params.flavor if action is Action.RESIZE else None,
            since=cloud_time(response),
        )

    @property
    def _tags_at_create(self) -> bool:
        """Tags in a create's body (2.52); a cloud whose document was not read is sent 2.52,
        as before discovery existed."""
        return self.version is None or self.version.create_tags

    async def create(self, request: CreateRequest) -> Submission:
        """`POST /servers`: one server; the submission carries its id. Tags in the body at 2.52,
        else as metadata with the endpoint's microversion (`fleet.drivers.nova.create`)."""
        await self.compute()  # what the version document says decides the body
        tags = self._tags_at_create
        body = cr.create_body(request, tags_in_body=tags)
        headers = cr.CREATE_HEADERS if tags else self._headers
        response = await self._call("POST", "/servers", cr.CREATE, body=body, headers=headers)
        return cr.created(response, since=cloud_time(response))

    async def quota(self) -> Quota | None:
        return cr.parse_limits((await self._call("GET", "/limits", cr.LIMITS)).data)

    async def list_created(
        self, tag: tuple[str, str], name_prefix: str, since: str | None = None
    ) -> AsyncIterator[ServerRef]:
        """By the tag where creates write tags (2.52), else by the name (Nova's `name` filter is
        a regular expression) and the tag the create wrote as metadata; with `since`, only the
        servers changed since (`changes-since`, which lists deleted servers too: left out)."""
        await self.compute()
        at = polling.parse_time(since)
        recent = [polling.changes_since(at)] if at is not None else []
        if self._tags_at_create:
            selector = created_selector(tag, name_prefix)
            query = [*rq.list_query(selector, self.quirks), *recent]
        else:
            selector, query = None, [*cr.name_query(name_prefix), *recent]
        seen = SeenIds()
        pages = await self.server_pages(query)
        async with contextlib.aclosing(pages):
            async for body in pages:
                if selector is None and not cr.made_by(body, tag, name_prefix):
                    continue
                server = parse_server(body, endpoint=self.endpoint, provider=self.provider)
                if server.status is ServerStatus.DELETED or not seen.add(server.id):
                    continue
                if selector is None or selector.matches(server):
                    yield server

    async def _tags(self, action: Action, server_id: str, params: ActionParams) -> None:
        base = f"/servers/{seg(server_id)}/tags"
        if action is Action.TAG_ADD:
            for tag in rq.tags_1d(params.tags):
                await self._call("PUT", f"{base}/{seg(tag)}", TAGS, server_id=server_id)
            return
        current = raw_tags((await self._call("GET", base, TAGS, server_id=server_id)).data)
        for tag in tags_to_remove(current, params.tags):
            try:
                await self._call("DELETE", f"{base}/{seg(tag)}", TAGS, server_id=server_id)
            except NotFound:
                continue

    async def poll(self, submission: Submission) -> PollResult:
        """Each server's status: several at once from one `changes-since` listing, a `show` for
        each server it did not have (`fleet.drivers.nova.polling`)."""
        return await polling.poll(self, submission, self._config.page_size)
