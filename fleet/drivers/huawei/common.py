"""What the Huawei ECS and BMS drivers share: auth, transports, the project id, cloud jobs, and the
native OpenStack API on the ECS endpoint (server detail/show, per-server actions, 1D tags).

Native OpenStack calls never reuse a connection (`Connection: close`): BMS's API overview says long
HTTP connections cannot be used for them. Every native call sends microversion 2.26 so bodies carry
`tags` and `locked` and the tag filters work.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import ClassVar

import aiohttp

from fleet.domain import Action, Provider, ServerRef, tag_to_1d
from fleet.drivers.auth import TokenAuth
from fleet.drivers.base import (
    Capabilities,
    FlavorCache,
    InstanceAction,
    OutcomeState,
    PollResult,
    RequestGate,
    ServerOutcome,
    Submission,
    UnlimitedGate,
    all_done,
)
from fleet.drivers.config import AkSkCredentials, ConfigError, EndpointConfig
from fleet.drivers.errors import NotFound, Permanent
from fleet.drivers.http import (
    Authenticator,
    CloudClock,
    HttpRequest,
    HttpResponse,
    NoAuth,
    Transport,
    seg,
)
from fleet.drivers.huawei.auth import AkSkAuth, IamTokenFetcher, project_id_of
from fleet.drivers.huawei.errors import classify
from fleet.drivers.huawei.jobs import job_id_of, parse_job
from fleet.drivers.novacommon import (
    MICROVERSION_HEADERS,
    flavor_table,
    instance_actions_path,
    paged,
    parse_server,
    raw_tags,
    read_instance_actions,
    server_outcome,
    tags_to_remove,
)
from fleet.drivers.query import QueryValue

# API classes (the second half of a rate key) shared by both drivers.
NOVA_LIST = "nova_list"
NOVA_SHOW = "nova_show"
NOVA_ACTION = "nova_action"
NOVA_TAGS = "nova_tags"
NOVA_FLAVORS = "nova_flavors"
JOBS = "jobs"

BAREMETAL_TAG = "__type_baremetal"


def _utcnow() -> datetime:
    return datetime.now(UTC)


BAREMETAL_FLAVOR_PREFIX = "physical."


def is_baremetal(server: ServerRef) -> bool:
    """The native list mixes ECSs and BMSs: tell them apart by tag or flavor (api-digest 2.2.3)."""
    return BAREMETAL_TAG in server.tags or is_baremetal_flavor(server.flavor or "")


def is_baremetal_flavor(flavor: str) -> bool:
    """BMS flavors are named `physical.*` (api-digest 2.2.3); the native list shows both kinds."""
    return flavor.startswith(BAREMETAL_FLAVOR_PREFIX)


class HuaweiClient:
    """Transports to the ECS endpoint (v1 + native) and, for BMS, the BMS endpoint."""

    def __init__(
        self,
        config: EndpointConfig,
        session: aiohttp.ClientSession,
        gate: RequestGate,
        *,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.config = config
        self.endpoint = config.name
        self.provider = config.provider
        self._token: TokenAuth | None = None
        # The ECS and BMS endpoints' clock (IAM's is another host's: not used as the cloud's)
        self.clock = CloudClock()
        auth = self._authenticator(session, gate, now)
        self.ecs = self._transport(session, gate, config.ecs_url or "", auth, self.clock)
        bms_url = config.bms_url or config.ecs_url or ""
        self.bms = self._transport(session, gate, bms_url, auth, self.clock)

    def _transport(
        self,
        session: aiohttp.ClientSession,
        gate: RequestGate,
        base: str,
        auth: Authenticator,
        clock: CloudClock | None = None,
    ) -> Transport:
        cfg = self.config
        return Transport(
            session=session,
            gate=gate,
            endpoint=cfg.name,
            base_url=base,
            classify=classify,
            auth=auth,
            timeout=cfg.timeout,
            connect_timeout=cfg.connect_timeout,
            read_retries=cfg.read_retries,
            clock=clock,
        )

    def _authenticator(
        self, session: aiohttp.ClientSession, gate: RequestGate, now: Callable[[], datetime]
    ) -> Authenticator:
        cfg = self.config
        creds = cfg.credentials
        if isinstance(creds, AkSkCredentials):
            if not cfg.project_id:
                raise ConfigError(f"endpoint {cfg.name}: AK/SK signing needs project_id")
            return AkSkAuth(creds, cfg.project_id, now=now)
        iam = self._transport(session, gate, cfg.iam_url or "", NoAuth())
        # Huawei project names are region names ("cn-north-4"): the region is the default.
        project_name = cfg.project_name or cfg.region
        fetch = IamTokenFetcher(
            iam, creds, project_id=cfg.project_id, project_name=project_name, now=now
        )
        self._token = TokenAuth(fetch, endpoint=cfg.name, now=now)
        return self._token

    async def project_id(self) -> str:
        if self.config.project_id:
            return self.config.project_id
        if self._token is None:
            raise ConfigError(f"endpoint {self.endpoint}: project_id is required")
        found = project_id_of(await self._token.token())
        if not found:
            raise Permanent(f"endpoint {self.endpoint}: the IAM token names no project id")
        return found

    async def check_credentials(self) -> None:
        """The credentials work: an IAM token (the cached one while it is fresh, so no call), or
        with AK/SK one signed call (the native list of at most one server)."""
        if self._token is not None:
            await self._token.token()
            return
        await self.native("GET", "/servers", NOVA_LIST, query=[("limit", 1)])

    # --- cloud jobs --------------------------------------------------------------------------

    async def post_job(
        self,
        transport: Transport,
        path: str,
        api_class: str,
        body: object,
        ids: Sequence[str],
    ) -> tuple[str | None, HttpResponse]:
        """POST a job-creating v1 call; the job id (None if the cloud gave none) and the response."""
        response = await transport.call(
            HttpRequest("POST", path, api_class, json_body=body, server_ids=tuple(ids))
        )
        return job_id_of(response.data), response

    async def job(self, transport: Transport, job_id: str, server_ids: Sequence[str]) -> PollResult:
        pid = await self.project_id()
        response = await transport.call(
            HttpRequest("GET", f"/v1/{seg(pid)}/jobs/{seg(job_id)}", JOBS)
        )
        return parse_job(response.data, server_ids)

    # --- the native OpenStack API (ECS endpoint) --------------------------------------------

    async def native(
        self,
        method: str,
        path: str,
        api_class: str,
        *,
        body: object = None,
        query: Sequence[tuple[str, QueryValue]] = (),
        server_id: str | None = None,
    ) -> HttpResponse:
        pid = await self.project_id()
        return await self.ecs.call(
            HttpRequest(
                method,
                f"/v2.1/{seg(pid)}{path}",
                api_class,
                query=query,
                json_body=body,
                server_ids=(server_id,) if server_id else (),
                headers=MICROVERSION_HEADERS,
                close_connection=True,
            )
        )

    async def show(self, server_id: str) -> ServerRef:
        response = await self.native(
            "GET", f"/servers/{seg(server_id)}", NOVA_SHOW, server_id=server_id
        )
        server = (response.data or {}) if isinstance(response.data, dict) else {}
        return parse_server(server.get("server"), endpoint=self.endpoint, provider=self.provider)

    async def detail(self, query: Sequence[tuple[str, QueryValue]]) -> AsyncIterator[ServerRef]:
        pid = await self.project_id()
        pages = paged(
            self.ecs,
            f"/v2.1/{seg(pid)}/servers/detail",
            "servers",
            api_class=NOVA_LIST,
            page_size=self.config.page_size,
            query=query,
            close_connection=True,
        )
        async with contextlib.aclosing(pages):  # a consumer that stops early closes the pager
            async for body in pages:
                yield parse_server(body, endpoint=self.endpoint, provider=self.provider)

    async def instance_actions(self, server_id: str) -> list[InstanceAction] | None:
        """The server's `os-instance-actions` on the native API of the ECS endpoint (ECS and BMS
        servers alike: api-digest 3.2)."""
        path = instance_actions_path(seg(server_id))
        return await read_instance_actions(
            lambda: self.native("GET", path, NOVA_SHOW, server_id=server_id)
        )

    async def native_flavors(self) -> dict[str, str]:
        """Every flavor of the native `GET /v2.1/{project_id}/flavors/detail`, id -> name (ECS
        and BMS flavors alike, paged with `limit` + `marker`)."""
        pid = await self.project_id()
        return await flavor_table(
            self.ecs,
            f"/v2.1/{seg(pid)}/flavors/detail",
            api_class=NOVA_FLAVORS,
            page_size=self.config.page_size,
            close_connection=True,
        )

    async def native_action(self, server_id: str, body: object) -> HttpResponse:
        return await self.native(
            "POST", f"/servers/{seg(server_id)}/action", NOVA_ACTION, body=body, server_id=server_id
        )

    async def add_1d_tags(self, server_id: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            path = f"/servers/{seg(server_id)}/tags/{seg(tag_to_1d(key, value))}"
            await self.native("PUT", path, NOVA_TAGS, server_id=server_id)

    async def remove_1d_tags(self, server_id: str, tags: Mapping[str, str]) -> None:
        """Remove tags idempotently: read the server's tags, delete those present (a "" value
        removes every tag with that key)."""
        response = await self.native(
            "GET", f"/servers/{seg(server_id)}/tags", NOVA_TAGS, server_id=server_id
        )
        for tag in tags_to_remove(raw_tags(response.data), tags):
            path = f"/servers/{seg(server_id)}/tags/{seg(tag)}"
            try:
                await self.native("DELETE", path, NOVA_TAGS, server_id=server_id)
            except NotFound:
                continue  # removed meanwhile: the goal is reached


class HuaweiDriverBase:
    """What the Huawei ECS and BMS drivers share: one `HuaweiClient`, identity and capabilities.

    Subclasses set `PROVIDER`, `CAPS` and `DIALECT` (the name used in "unsupported" messages).
    """

    PROVIDER: ClassVar[Provider]
    CAPS: ClassVar[Capabilities]
    DIALECT: ClassVar[str]

    def __init__(
        self,
        config: EndpointConfig,
        session: aiohttp.ClientSession,
        gate: RequestGate | None = None,
        *,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._client = HuaweiClient(config, session, gate or UnlimitedGate(), now=now)
        self._config = config
        self._flavors = FlavorCache()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={self.endpoint!r})"

    @property
    def endpoint(self) -> str:
        return self._config.name

    @property
    def provider(self) -> Provider:
        return self.PROVIDER

    @property
    def capabilities(self) -> Capabilities:
        return self.CAPS

    def max_batch(self, action: Action) -> int:
        return self.CAPS.spec(action).max_batch

    async def check_credentials(self) -> None:
        await self._client.check_credentials()

    async def cloud_clock(self) -> datetime | None:
        if self._client.clock.latest is None:
            await self._client.native("GET", "/flavors", NOVA_FLAVORS, query=[("limit", 1)])
        return self._client.clock.latest

    async def instance_actions(self, server_id: str) -> list[InstanceAction] | None:
        return await self._client.instance_actions(server_id)

    async def _poll(
        self,
        submission: Submission,
        service: Transport,
        show: Callable[[str], Awaitable[ServerRef]],
    ) -> PollResult:
        """The submission's cloud job on `service`; without one (a call the engine verified
        mid-transition), each server's status read by `show`."""
        if submission.done:
            return all_done(submission)
        if submission.job_id is not None:
            return await self._client.job(service, submission.job_id, submission.server_ids)
        outcomes: dict[str, ServerOutcome] = {}
        for server_id in submission.server_ids:
            try:
                server = await show(server_id)
            except NotFound:  # a delete's goal; any other action's server vanished
                gone = submission.action is Action.DELETE
                outcomes[server_id] = ServerOutcome(
                    server_id,
                    OutcomeState.DONE if gone else OutcomeState.FAILED,
                    reason=None if gone else "server not found",
                    kind=None if gone else "not_found",
                )
                continue
            outcomes[server_id] = server_outcome(submission.action, server, submission.flavor)
        return PollResult(outcomes)
