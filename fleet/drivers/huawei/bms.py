"""Huawei Bare Metal Servers: the BMS v1 API on the BMS endpoint, native 1D tags on the ECS one.

- start/stop/reboot: `POST /v1/{project_id}/baremetalservers/action` with a server list, returning a
  job polled at `GET /v1/{project_id}/jobs/{job_id}` on the BMS endpoint. The seeds give the URIs
  and limits but no bodies (A-3); the bodies are ECS v1's, which is also what the official BMS SDK
  models say. `type` is always sent: the BMS API's default is HARD, ECS's is SOFT.
- listing: `GET /v1/{project_id}/baremetalservers/detail`, whose `offset` is a page NUMBER starting
  at 1 (official SDK), read page by page until a short page; one server: `.../baremetalservers/{id}`.
- tags: the native 1D tag API on the ECS endpoint ("key=value" strings; S0 "1D tag management").
- resize and delete: no BMS API in the seeds, so unsupported. `flavors()` still answers (the
  `physical.*` flavors of the native list on the ECS endpoint), so every driver can say what flavors
  its servers have; nothing resizes to them.
Budgets per URI from the BMS API constraints table (seed 000): action 50/min (start, stop and reboot
share one URI, A-2), jobs 2,000/min, detail 500/min, show 1,000/min, tenant quotas 500/min.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

from fleet.domain import Action, ActionParams, Provider, Selector, ServerRef, ServerStatus
from fleet.drivers.actions import (
    SIMPLE_KINDS,
    Capabilities,
    Evidence,
    creating,
    power,
    simple,
    tags,
    unsupported,
)
from fleet.drivers.base import (
    BudgetUnit,
    CreateRequest,
    PollResult,
    Quota,
    RateBudget,
    Submission,
    check_batch,
    created_selector,
    servers_by_id,
    shows_each,
)
from fleet.drivers.errors import Transient, Unsupported
from fleet.drivers.http import HttpRequest, seg
from fleet.drivers.huawei import create as cr
from fleet.drivers.huawei import requests as rq
from fleet.drivers.huawei.auth import IAM_API_CLASS
from fleet.drivers.huawei.common import (
    BAREMETAL_TAG,
    JOBS,
    NOVA_FLAVORS,
    NOVA_TAGS,
    HuaweiDriverBase,
    is_baremetal_flavor,
)
from fleet.drivers.jsonutil import as_dict, as_list
from fleet.drivers.novacommon import parse_server
from fleet.drivers.query import QueryValue
from jobs.seen import SeenIds

S = ServerStatus
ACTION, DETAIL, SHOW = "action", "detail", "show"
# Not documented; ECS v1 takes 1,000. Bare-metal fleets are small and each call is
# one of only 50 per minute, so a large batch is what keeps a campaign moving.
MAX_BATCH = 100
_CREATE, _CREATE_OFFER = creating(cr.CREATE, cr.BMS_MAX_COUNT)

CAPABILITIES = Capabilities(
    dialect="Huawei BMS",
    actions={
        a.action: a
        for a in (
            *(
                power(action, ACTION, MAX_BATCH, evidence=Evidence.CLOUD_JOB)
                for action in (Action.START, Action.STOP, Action.REBOOT)
            ),
            *tags(NOVA_TAGS),
            _CREATE,
        )
    },
    offers={
        **{
            kind: simple(kind, action)
            for kind, action in SIMPLE_KINDS.items()
            if action is not Action.DELETE
        },
        "delete": unsupported("delete", Action.DELETE, "the BMS API documents no delete"),
        "resize": unsupported("resize", Action.RESIZE, "the BMS API documents no resize"),
        "create": _CREATE_OFFER,
    },
    # BMS API constraints table (seed 000), per URI.
    budgets={
        ACTION: (RateBudget(50, 60.0, BudgetUnit.REQUESTS),),
        cr.CREATE: (RateBudget(50, 60.0, BudgetUnit.REQUESTS),),
        JOBS: (RateBudget(2000, 60.0, BudgetUnit.REQUESTS),),
        DETAIL: (RateBudget(500, 60.0, BudgetUnit.REQUESTS),),
        SHOW: (RateBudget(1000, 60.0, BudgetUnit.REQUESTS),),
        cr.LIMITS: (RateBudget(500, 60.0, BudgetUnit.REQUESTS),),
        NOVA_TAGS: (),  # native API on the ECS endpoint: no documented limit
        NOVA_FLAVORS: (),  # likewise; the list is cached (`FlavorCache`)
        IAM_API_CLASS: (),
    },
)


_STATUS_FILTER = {S.RUNNING: "ACTIVE", S.STOPPED: "SHUTOFF", S.ERROR: "ERROR"}


def _status_query(selector: Selector) -> list[tuple[str, QueryValue]]:
    if len(selector.statuses) == 1:
        (status,) = selector.statuses
        if status in _STATUS_FILTER:
            return [("status", _STATUS_FILTER[status])]
    return []


class HuaweiBmsDriver(HuaweiDriverBase):
    PROVIDER = Provider.HUAWEI_BMS
    CAPS = CAPABILITIES
    DIALECT = "Huawei BMS"

    def check(self, action: Action, params: ActionParams) -> None:
        CAPABILITIES.spec(action)
        if action in (Action.TAG_ADD, Action.TAG_REMOVE):
            tags = rq.require_tags(params)
            if BAREMETAL_TAG in tags:
                raise Unsupported(
                    f"{BAREMETAL_TAG} is a system tag of every BMS", field="params.tags"
                )
        if action is Action.CREATE:
            cr.check_create(params, max_tags=cr.BMS_MAX_TAGS, needs_zone=True)

    async def flavors(self) -> frozenset[str]:
        return frozenset(await self.flavor_table())

    async def flavor_table(self) -> Mapping[str, str]:
        """The BMS (`physical.*`) flavor ids of the native list. BMS has no resize, so no request
        is ever checked against them; they are listed for completeness, not as resize targets."""
        return await self._flavors.get(self._fetch_flavors)

    async def _fetch_flavors(self) -> Mapping[str, str]:
        found = await self._client.native_flavors()
        return {f: name for f, name in found.items() if is_baremetal_flavor(f)}

    async def get_server(self, server_id: str) -> ServerRef:
        pid = seg(await self._client.project_id())
        response = await self._client.bms.call(
            HttpRequest(
                "GET",
                f"/v1/{pid}/baremetalservers/{seg(server_id)}",
                SHOW,
                server_ids=(server_id,),
            )
        )
        body = as_dict(response.data).get("server")
        return parse_server(body, endpoint=self.endpoint, provider=self.provider)

    async def list_servers(self, selector: Selector) -> AsyncIterator[ServerRef]:
        if shows_each(selector):
            async for server in servers_by_id(selector, self.get_server):
                yield server
            return
        seen = SeenIds()
        async for body in self._detail_pages(_status_query(selector)):
            server = parse_server(body, endpoint=self.endpoint, provider=self.provider)
            if selector.matches(server) and seen.add(server.id):
                yield server

    async def _detail_pages(self, query: list[tuple[str, QueryValue]]) -> AsyncIterator[object]:
        """Every server body of the v1 detail list, page number by page number."""
        pid = seg(await self._client.project_id())
        size = self._config.page_size
        page_number = 1
        while True:
            params: list[tuple[str, QueryValue]] = [
                *query,
                ("limit", str(size)),
                ("offset", str(page_number)),
            ]
            response = await self._client.bms.call(
                HttpRequest("GET", f"/v1/{pid}/baremetalservers/detail", DETAIL, query=params)
            )
            page = as_list(as_dict(response.data).get("servers"))
            for item in page:
                yield item
            if len(page) < size:
                return
            page_number += 1

    async def submit(self, action: Action, ids: Sequence[str], params: ActionParams) -> Submission:
        self.check(action, params)
        spec = CAPABILITIES.actions[action]
        check_batch(spec, ids)
        if action in (Action.TAG_ADD, Action.TAG_REMOVE):
            if action is Action.TAG_ADD:
                await self._client.add_1d_tags(ids[0], params.tags)
            else:
                await self._client.remove_1d_tags(ids[0], params.tags)
            return Submission(action, (ids[0],), NOVA_TAGS, done=True)
        pid = seg(await self._client.project_id())
        body = rq.v1_power_body(action, ids, params)
        job_id, response = await self._client.post_job(
            self._client.bms, f"/v1/{pid}/baremetalservers/action", ACTION, body, ids
        )
        if job_id is None:
            raise Transient(
                f"{action.value} accepted without a job id",
                ambiguous=True,
                http_status=response.status,
                request_id=response.request_id,
            )
        return Submission(action, tuple(ids), ACTION, job_id=job_id, request_id=response.request_id)

    async def poll(self, submission: Submission) -> PollResult:
        return await self._poll(submission, self._client.bms, self.get_server)

    async def create(self, request: CreateRequest) -> Submission:
        """`POST /v1/{project_id}/baremetalservers`: one job (and an order) for `count` BMSs."""
        pid = seg(await self._client.project_id())
        body = cr.bms_body(request)
        job_id, response = await self._client.post_job(
            self._client.bms, f"/v1/{pid}/baremetalservers", cr.CREATE, body, ()
        )
        if job_id is None:
            raise Transient(
                "create accepted without a job id",
                ambiguous=True,
                http_status=response.status,
                request_id=response.request_id,
            )
        return Submission(
            Action.CREATE, (), cr.CREATE, job_id=job_id, request_id=response.request_id
        )

    def list_created(
        self, tag: tuple[str, str], name_prefix: str, since: str | None = None
    ) -> AsyncIterator[ServerRef]:
        return self.list_servers(created_selector(tag, name_prefix))

    async def quota(self) -> Quota | None:
        """The tenant's BMS quota (seed 000 "Querying Tenant Quotas"; the body is the official
        SDK's `ShowTenantQuotaResponse`, `{"absolute": {...}}` as ECS answers it)."""
        pid = seg(await self._client.project_id())
        response = await self._client.bms.call(
            HttpRequest("GET", f"/v1/{pid}/baremetalservers/limits", cr.LIMITS)
        )
        return cr.parse_limits(response.data)
