"""Huawei Cloud ECS: the v1 API for actions (batched, with cloud jobs), the native API for reading.

- start/stop/reboot: `POST /v1/{project_id}/cloudservers/action`, up to 1,000 servers per call,
  one job with a sub-job per server; the documented budget is 1,000 servers per minute.
- resize: `POST /v1/{project_id}/cloudservers/{id}/resize` (stopped servers only; `dry_run` checks
  without changing anything and completes at once).
- delete: `POST /v1/{project_id}/cloudservers/delete`, up to 1,000 per call.
- tags: 2D `POST /v1/{project_id}/servers/{id}/tags/action` (idempotent, synchronous).
- confirm/revert resize: native `POST /v2.1/{project_id}/servers/{id}/action` (for servers a native
  resize left in VERIFY_RESIZE).
- flavors (resize targets): the native `GET /v2.1/{project_id}/flavors/detail` without the BMS
  (`physical.*`) flavors, cached for a few minutes. The v1 `GET /v1/{project_id}/cloudservers/
  flavors` (api-digest Appendix C) is not used: the simulator does not serve it, and the native
  list is read with the paging fleet already speaks.
- listing by name: the v1 list with details, `GET /v1/{project_id}/cloudservers/detail`
  (`listing`), for a selector without tag criteria whose name glob has a literal part: the list
  narrows by it server-side (and by one status), lists ECSs only, and says how many match.
- every other listing: the native server detail list (status, flavor, tags), narrowed by the v1
  query-by-tag API when the selector has tag criteria (the documented 2D tag filter with
  AND/OR/NOT). Without tag criteria or a name, the v1 list reads the same servers and was not
  faster (`bench/listing.py`, docs/benchmarks.md), so the native list stays.
- a few ids (`shows_each`): the native show, one server each.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence

from fleet.domain import (
    Action,
    ActionParams,
    Provider,
    Selector,
    ServerRef,
    ServerStatus,
    tag_to_1d,
)
from fleet.drivers.actions import (
    AFTER_RESIZE,
    SIMPLE_KINDS,
    ActionSpec,
    Capabilities,
    Evidence,
    Goal,
    Offer,
    Recipe,
    Step,
    creating,
    power,
    simple,
    tags,
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
    JOBS,
    NOVA_ACTION,
    NOVA_FLAVORS,
    NOVA_LIST,
    NOVA_SHOW,
    HuaweiDriverBase,
    is_baremetal,
    is_baremetal_flavor,
)
from fleet.drivers.huawei.listing import (
    DETAIL,
    STATUS_FILTER,
    uses_v1_list,
    v1_detail_pages,
    v1_list_query,
)
from fleet.drivers.jsonutil import as_dict, as_list, opt_str
from fleet.drivers.novacommon import parse_server
from fleet.drivers.query import QueryValue
from jobs.seen import SeenIds

S = ServerStatus
ACTION, RESIZE, DELETE, TAGS, QUERY = "action", "resize", "delete", "tags", "query"
MAX_BATCH = 1000  # "A maximum of 1,000 ECSs can be deleted in a batch"; per minute for the others

# ECS v1 resizes only stopped servers: stop (if running) -> resize -> start (if it was running).
# Each step is a cloud job, persisted, so a crash resumes at the right step. When the resize fails
# (its cloud job, or a refusal of the call), a server that was running is started again, then the
# sub-job fails with the resize's own code and message.
RESIZE_RECIPE = Recipe(
    "resize/ecs-v1",
    (
        Step(Action.STOP, only_if_running=True),
        Step(Action.RESIZE, compensated=True),
        Step(Action.START, only_if_running=True),
        # appended, so the indexes of sub-jobs planned before it are unchanged
        Step(
            Action.START,
            only_if_running=True,
            on_failure_only=True,
            doing="starting the server again, as it was running before",
            done="the server was started again, as it was running before",
        ),
    ),
)
_JOB = Evidence.CLOUD_JOB
_CREATE, _CREATE_OFFER = creating(cr.CREATE, cr.ECS_MAX_COUNT)

CAPABILITIES = Capabilities(
    dialect="Huawei ECS",
    actions={
        a.action: a
        for a in (
            *(
                power(action, ACTION, MAX_BATCH, counts_servers=True, evidence=_JOB)
                for action in (Action.START, Action.STOP, Action.REBOOT)
            ),
            ActionSpec(Action.RESIZE, RESIZE, 1, Goal.FLAVOR, evidence=_JOB),
            ActionSpec(Action.CONFIRM_RESIZE, NOVA_ACTION, 1, Goal.STEP, settles_in=AFTER_RESIZE),
            ActionSpec(Action.REVERT_RESIZE, NOVA_ACTION, 1, Goal.STEP, settles_in=AFTER_RESIZE),
            *tags(TAGS),
            ActionSpec(Action.DELETE, DELETE, MAX_BATCH, Goal.STATUS, S.DELETED, evidence=_JOB),
            _CREATE,
        )
    },
    offers={
        **{kind: simple(kind, action) for kind, action in SIMPLE_KINDS.items()},
        "resize": Offer("resize", Action.RESIZE, (RESIZE_RECIPE,), needs=("flavor",)),
        "create": _CREATE_OFFER,
    },
    # Only batch start/stop/reboot has a documented limit; every other class is listed without a
    # budget so the engine knows the keys (and configuration can give them one).
    budgets={
        ACTION: (RateBudget(1000, 60.0, BudgetUnit.SERVERS),),
        **{c: () for c in (RESIZE, DELETE, TAGS, QUERY, JOBS, NOVA_LIST, NOVA_SHOW, NOVA_ACTION)},
        cr.CREATE: (),  # no create limit is documented for ECS
        cr.LIMITS: (),
        DETAIL: (),  # the v1 list: no limit is documented for any ECS read
        NOVA_FLAVORS: (),  # undocumented too; the list is cached (`FlavorCache`), so it is rare
        IAM_API_CLASS: (),
    },
)


def native_list_query(selector: Selector) -> list[tuple[str, QueryValue]]:
    """Server-side narrowing of the native list where its meaning is unambiguous: one status, and
    one `tags_all` entry as the microversion 2.26 `tags` filter (Huawei documents neither a comma
    list's meaning nor `tags-any`). `Selector.matches` stays the authority."""
    query: list[tuple[str, QueryValue]] = []
    if len(selector.statuses) == 1:
        (status,) = selector.statuses
        if status in STATUS_FILTER:
            query.append(("status", STATUS_FILTER[status]))
    if len(selector.tags_all) == 1:
        ((key, value),) = selector.tags_all.items()
        query.append(("tags", tag_to_1d(key, value)))
    return query


class HuaweiEcsDriver(HuaweiDriverBase):
    PROVIDER = Provider.HUAWEI_ECS
    CAPS = CAPABILITIES
    DIALECT = "Huawei ECS"

    def check(self, action: Action, params: ActionParams) -> None:
        CAPABILITIES.spec(action)
        if action is Action.RESIZE:
            rq.require_flavor(params)
            if params.live:
                raise Unsupported(
                    "Huawei ECS resizes stopped servers only (no live resize)", field="params.live"
                )
        if action in (Action.TAG_ADD, Action.TAG_REMOVE):
            rq.require_tags(params)
        if action is Action.CREATE:
            cr.check_create(params, max_tags=cr.ECS_MAX_TAGS, needs_zone=False)

    # --- reading -----------------------------------------------------------------------------

    async def get_server(self, server_id: str) -> ServerRef:
        return await self._client.show(server_id)

    async def flavors(self) -> frozenset[str]:
        return frozenset(await self.flavor_table())

    async def flavor_table(self) -> Mapping[str, str]:
        """The ECS flavor ids (the native list without BMS `physical.*` flavors)."""
        return await self._flavors.get(self._fetch_flavors)

    async def _fetch_flavors(self) -> Mapping[str, str]:
        found = await self._client.native_flavors()
        return {f: name for f, name in found.items() if not is_baremetal_flavor(f)}

    async def list_servers(self, selector: Selector) -> AsyncIterator[ServerRef]:
        if shows_each(selector):
            async for server in servers_by_id(
                selector, self._client.show, keep=lambda s: not is_baremetal(s)
            ):
                yield server
            return
        listing = self.list_v1 if uses_v1_list(selector) else self.list_native
        async with contextlib.aclosing(listing(selector)) as servers:
            async for server in servers:
                yield server

    async def list_v1(self, selector: Selector) -> AsyncGenerator[ServerRef, None]:
        """The selector's ECSs from the v1 list with details (status and name narrowed there)."""
        pid = await self._client.project_id()
        pages = v1_detail_pages(
            self._client.ecs,
            f"/v1/{seg(pid)}/cloudservers/detail",
            page_size=self._config.page_size,
            query=v1_list_query(selector),
        )
        seen = SeenIds()
        async with contextlib.aclosing(pages):  # a consumer that stops early closes the pager
            async for body in pages:
                server = parse_server(body, endpoint=self.endpoint, provider=self.provider)
                if is_baremetal(server) or not seen.add(server.id):
                    continue
                if selector.matches(server):
                    yield server

    async def list_native(self, selector: Selector) -> AsyncGenerator[ServerRef, None]:
        """The selector's ECSs from the native detail list, narrowed by query-by-tag when the
        selector has tag criteria."""
        allowed: dict[str, dict[str, str]] | None = None
        if selector.has_tag_criteria:
            allowed = await self._query_by_tag(selector)
            if not allowed:
                return
        seen = SeenIds()
        async for server in self._client.detail(native_list_query(selector)):
            if is_baremetal(server) or (allowed is not None and server.id not in allowed):
                continue
            if not seen.add(server.id):
                continue
            if allowed is not None:
                # the v1 2D tags are authoritative; the native list adds system tags
                server = dataclasses.replace(server, tags={**server.tags, **allowed[server.id]})
            if selector.matches(server):
                yield server

    async def _query_by_tag(self, selector: Selector) -> dict[str, dict[str, str]]:
        """Ids (with their 2D tags) matching the tag criteria, paging offset/limit to the end."""
        pid = await self._client.project_id()
        found: dict[str, dict[str, str]] = {}
        offset, limit = 0, self._config.page_size
        while True:
            body = rq.query_by_tag_body(selector, offset, limit)
            if body is None:
                return {}
            response = await self._client.ecs.call(
                HttpRequest(
                    "POST",
                    f"/v1/{seg(pid)}/servers/resource_instances/action",
                    QUERY,
                    json_body=body,
                )
            )
            data = as_dict(response.data)
            page = as_list(data.get("resources"))
            for item in page:
                resource = as_dict(item)
                rid = opt_str(resource.get("resource_id"))
                if rid:
                    found[rid] = _tags_2d(resource.get("tags"))
            offset += len(page)
            total = data.get("total_count")
            if not page or (isinstance(total, int) and offset >= total):
                return found

    # --- acting --------------------------------------------------------------------------------

    async def submit(self, action: Action, ids: Sequence[str], params: ActionParams) -> Submission:
        self.check(action, params)
        spec = CAPABILITIES.actions[action]
        check_batch(spec, ids)
        pid = seg(await self._client.project_id())
        if action in (Action.START, Action.STOP, Action.REBOOT):
            body = rq.v1_power_body(action, ids, params)
            return await self._job(action, ids, f"/v1/{pid}/cloudservers/action", body, spec)
        if action is Action.DELETE:
            body = rq.v1_delete_body(ids, params)
            return await self._job(action, ids, f"/v1/{pid}/cloudservers/delete", body, spec)
        if action is Action.RESIZE:
            path = f"/v1/{pid}/cloudservers/{seg(ids[0])}/resize"
            return await self._job(action, ids, path, rq.v1_resize_body(params), spec, params)
        if action in (Action.TAG_ADD, Action.TAG_REMOVE):
            return await self._tags(action, ids[0], params, pid)
        body = (
            rq.native_confirm_resize_body()
            if action is Action.CONFIRM_RESIZE
            else rq.native_revert_resize_body()
        )
        response = await self._client.native_action(ids[0], body)
        return Submission(action, tuple(ids), NOVA_ACTION, request_id=response.request_id)

    async def _job(
        self,
        action: Action,
        ids: Sequence[str],
        path: str,
        body: object,
        spec: ActionSpec,
        params: ActionParams | None = None,
    ) -> Submission:
        job_id, response = await self._client.post_job(
            self._client.ecs, path, spec.api_class, body, ids
        )
        dry_run = params is not None and params.dry_run
        if job_id is None and not dry_run:
            raise Transient(
                f"{action.value} accepted without a job id",
                ambiguous=True,
                http_status=response.status,
                request_id=response.request_id,
            )
        return Submission(
            action,
            tuple(ids),
            spec.api_class,
            job_id=job_id,
            request_id=response.request_id,
            done=dry_run,
            flavor=params.flavor if params else None,
        )

    async def _tags(
        self, action: Action, server_id: str, params: ActionParams, pid: str
    ) -> Submission:
        body = (
            rq.v1_tag_add_body(params)
            if action is Action.TAG_ADD
            else rq.v1_tag_remove_body(params)
        )
        response = await self._client.ecs.call(
            HttpRequest(
                "POST",
                f"/v1/{pid}/servers/{seg(server_id)}/tags/action",
                TAGS,
                json_body=body,
                server_ids=(server_id,),
            )
        )
        return Submission(action, (server_id,), TAGS, request_id=response.request_id, done=True)

    async def poll(self, submission: Submission) -> PollResult:
        return await self._poll(submission, self._client.ecs, self._client.show)

    async def create(self, request: CreateRequest) -> Submission:
        """`POST /v1/{project_id}/cloudservers` (post-paid): one job for `count` servers."""
        pid = seg(await self._client.project_id())
        return await self._job(
            Action.CREATE, (), f"/v1/{pid}/cloudservers", cr.ecs_body(request), _CREATE
        )

    def list_created(
        self, tag: tuple[str, str], name_prefix: str, since: str | None = None
    ) -> AsyncIterator[ServerRef]:
        return self.list_servers(created_selector(tag, name_prefix))

    async def quota(self) -> Quota | None:
        pid = seg(await self._client.project_id())
        response = await self._client.ecs.call(
            HttpRequest("GET", f"/v1/{pid}/cloudservers/limits", cr.LIMITS)
        )
        return cr.parse_limits(response.data)


def _tags_2d(raw: object) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in as_list(raw):
        tag = as_dict(item)
        key = opt_str(tag.get("key"))
        if key:
            tags[key] = opt_str(tag.get("value")) or ""
    return tags
