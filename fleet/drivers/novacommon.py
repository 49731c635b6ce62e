"""What Huawei's native OpenStack API and OpenStack/EasyStack Nova share: server bodies, paging,
and deciding from a server's body whether a per-server action has finished.

Nova has no job object: completion is read from the server. Nova sets the task state before it
answers 202 (a stop shows `powering-off` at once), so a server that has settled in the target
status with no task state after an accepted call has finished; an ERROR status, or a resize that
settled without the target flavor, has failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from fleet.domain import Action, Provider, ServerRef, ServerStatus, tag_from_1d, tags_from_1d
from fleet.drivers.base import InstanceAction, OutcomeState, ServerOutcome
from fleet.drivers.errors import DriverError, ErrorKind, NotFound, Transient
from fleet.drivers.http import HttpRequest, HttpResponse, Transport
from fleet.drivers.jsonutil import as_dict, as_list, opt_str
from fleet.drivers.query import QueryValue
from fleet.drivers.status import normalise_status

MICROVERSION = "2.26"  # tags in bodies and tag filters; keeps the flavor `id` (changes at 2.47)
MICROVERSION_HEADERS: Mapping[str, str] = {"X-OpenStack-Nova-API-Version": MICROVERSION}


class NovaServerBody(BaseModel):
    """A Nova server body. EasyStack's tables write `OS-EXT-SRV-ATTR:*_state` (A-33): both read."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str = ""
    status: str = "UNKNOWN"
    task_state: str | None = Field(
        None,
        validation_alias=AliasChoices("OS-EXT-STS:task_state", "OS-EXT-SRV-ATTR:task_state"),
    )
    vm_state: str | None = Field(
        None, validation_alias=AliasChoices("OS-EXT-STS:vm_state", "OS-EXT-SRV-ATTR:vm_state")
    )
    flavor: dict[str, object] | str | None = None
    tags: list[str] | None = None
    locked: bool | None = None
    fault: dict[str, object] | None = None
    updated: str | None = None


def flavor_id(flavor: dict[str, object] | str | None) -> str | None:
    """Flavor `id` (microversion < 2.47), else `original_name`; a bare string as it is."""
    if isinstance(flavor, str):
        return flavor or None
    if isinstance(flavor, dict):
        return opt_str(flavor.get("id")) or opt_str(flavor.get("original_name"))
    return None


def parse_server(data: object, *, endpoint: str, provider: Provider) -> ServerRef:
    """A server body of a list or a show. The body goes to the model as it is (a copy with its
    keys made strings, `as_dict`, was a quarter of the cost of reading a listed server)."""
    try:
        body = NovaServerBody.model_validate(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        raise Transient(f"unreadable server body: {exc.errors()[0]['msg']}") from exc
    fault = as_dict(body.fault)
    return ServerRef(
        endpoint=endpoint,
        provider=provider,
        id=body.id,
        name=body.name,
        status=normalise_status(body.status, body.task_state, body.vm_state),
        raw_status=body.status,
        task_state=body.task_state or None,
        flavor=flavor_id(body.flavor),
        tags=tags_from_1d(body.tags or []),
        locked=bool(body.locked),
        fault=opt_str(fault.get("message")),
        updated=body.updated,
    )


def tags_to_remove(current: Sequence[str], tags: Mapping[str, str]) -> list[str]:
    """Which of the server's 1D tags a removal of 2D `tags` deletes."""
    doomed: list[str] = []
    for tag in current:
        key, value = tag_from_1d(tag)
        if key in tags and (not tags[key] or tags[key] == value):
            doomed.append(tag)
    return doomed


def instance_actions_path(server_id: str) -> str:
    return f"/servers/{server_id}/os-instance-actions"


async def read_instance_actions(
    get: Callable[[], Awaitable[HttpResponse]],
) -> list[InstanceAction] | None:
    """A server's `os-instance-actions` list, None when the endpoint answers 404 or 403 (a cloud
    that does not serve the API, or whose policy keeps it from this account, keeps no record we
    can read: no evidence either way; the caller has just read the server, so the 404 is the
    API's, not the server's)."""
    try:
        response = await get()
    except NotFound:
        return None
    except DriverError as exc:
        if exc.http_status == 403:
            return None
        raise
    return parse_instance_actions(response.data)


def parse_instance_actions(data: object) -> list[InstanceAction]:
    """The entries of an `{"instanceActions": [...]}` body that name an action and a start time
    (`start_time` without an offset is UTC, as Nova writes it)."""
    found: list[InstanceAction] = []
    for entry in as_list(as_dict(data).get("instanceActions")):
        body = as_dict(entry)
        action, started = opt_str(body.get("action")), _utc(opt_str(body.get("start_time")))
        if action and started is not None:
            found.append(InstanceAction(action, started, opt_str(body.get("request_id"))))
    return found


def _utc(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


def raw_tags(data: object) -> list[str]:
    return [t for t in as_list(as_dict(data).get("tags")) if isinstance(t, str)]


async def paged(
    transport: Transport,
    path: str,
    collection: str,
    *,
    api_class: str,
    page_size: int,
    query: Sequence[tuple[str, QueryValue]] = (),
    headers: Mapping[str, str] = MICROVERSION_HEADERS,
    close_connection: bool = False,
    first: Sequence[tuple[str, QueryValue]] = (),
    total: str | None = None,
) -> AsyncGenerator[object, None]:
    """Every item of a collection (`servers`, `flavors`), page by page (`limit` + `marker` =
    last id), to the end. `first`: parameters of the first page only (the ECS v1 list's
    `offset`); `total`: the answer's field that counts every item (the v1 list's `count`), so
    the listing ends once they have all arrived.

    Stops on a short page or an empty one; a marker seen twice means the cloud ignores it, which
    would loop forever, so it is an error. The next page is asked for as soon as a full page has
    arrived, so the cloud prepares it while this page's items are consumed (one page ahead at
    most; a consumer that stops early cancels it).
    """

    def fetch(marker: str | None) -> asyncio.Task[HttpResponse]:
        params: list[tuple[str, QueryValue]] = [*query, ("limit", str(page_size))]
        params += first if marker is None else [("marker", marker)]
        request = HttpRequest(
            "GET", path, api_class, query=params, headers=headers, close_connection=close_connection
        )
        task = asyncio.create_task(transport.call(request))
        task.add_done_callback(_retrieve)
        return task

    seen_markers: set[str] = set()
    received = 0
    pending: asyncio.Task[HttpResponse] | None = fetch(None)
    try:
        while pending is not None:
            data = as_dict((await pending).data)
            page = as_list(data.get(collection))
            received += len(page)
            count = data.get(total) if total else None
            pending = None
            more = not isinstance(count, int) or received < count
            if page and len(page) >= page_size and more:
                marker = opt_str(as_dict(page[-1]).get("id"))
                if marker is None or marker in seen_markers:
                    raise Transient(f"paging of {path} does not advance (marker {marker!r})")
                seen_markers.add(marker)
                pending = fetch(marker)
            for item in page:
                yield item
    finally:
        if pending is not None:
            pending.cancel()


def _retrieve(task: asyncio.Task[HttpResponse]) -> None:
    """Mark a page fetch's failure as seen: a consumer that stopped early never awaits it."""
    if not task.cancelled():
        task.exception()


async def flavor_table(
    transport: Transport,
    path: str,
    *,
    api_class: str,
    page_size: int,
    close_connection: bool = False,
    headers: Mapping[str, str] = MICROVERSION_HEADERS,
) -> dict[str, str]:
    """Every flavor of a Nova `/flavors/detail` list: id (what `flavorRef` takes) -> name."""
    found: dict[str, str] = {}
    pages = paged(
        transport,
        path,
        "flavors",
        api_class=api_class,
        page_size=page_size,
        close_connection=close_connection,
        headers=headers,
    )
    async with contextlib.aclosing(pages):
        async for item in pages:
            body = as_dict(item)
            flavor = opt_str(body.get("id"))
            if flavor:
                found[flavor] = opt_str(body.get("name")) or flavor
    return found


_TARGETS: dict[Action, frozenset[ServerStatus]] = {
    Action.START: frozenset({ServerStatus.RUNNING}),
    Action.STOP: frozenset({ServerStatus.STOPPED}),
    Action.REBOOT: frozenset({ServerStatus.RUNNING}),
    Action.CONFIRM_RESIZE: frozenset({ServerStatus.RUNNING, ServerStatus.STOPPED}),
    Action.REVERT_RESIZE: frozenset({ServerStatus.RUNNING, ServerStatus.STOPPED}),
    Action.DELETE: frozenset({ServerStatus.DELETED}),
}


def server_outcome(action: Action, server: ServerRef, target_flavor: str | None) -> ServerOutcome:
    """Whether `action`, accepted earlier, has finished on `server` (read just now)."""
    state = _outcome_state(action, server, target_flavor)
    if state is OutcomeState.FAILED:
        reason = server.fault or _failure_reason(action, server, target_flavor)
        return ServerOutcome(
            server.id,
            state,
            code=f"status:{server.raw_status}",
            reason=reason,
            kind=ErrorKind.PERMANENT.value,
            status=server.status,
        )
    return ServerOutcome(server.id, state, status=server.status)


def _failure_reason(action: Action, server: ServerRef, target_flavor: str | None) -> str:
    if action is Action.RESIZE:
        return f"resize settled with flavor {server.flavor!r}, not {target_flavor!r}"
    return f"{action.value} ended in status {server.raw_status}"


def _outcome_state(action: Action, server: ServerRef, target_flavor: str | None) -> OutcomeState:
    if server.status is ServerStatus.ERROR and not server.task_state:
        return OutcomeState.FAILED
    if not server.settled:
        return OutcomeState.RUNNING
    if server.fault and action is not Action.DELETE:
        # Nova shows `fault` only for ERROR/DELETED servers; a settled server that carries one
        # anyway (some clouds roll a failed action back) has failed this action.
        return OutcomeState.FAILED
    if action is Action.RESIZE:
        if server.status is ServerStatus.VERIFY_RESIZE:
            return OutcomeState.DONE
        # EasyStack may confirm by itself: settled with the new flavor is also done.
        if target_flavor is None or server.flavor == target_flavor:
            return OutcomeState.DONE
        return OutcomeState.FAILED
    targets = _TARGETS.get(action)
    if targets is None or server.status in targets:
        return OutcomeState.DONE
    if action in (Action.CONFIRM_RESIZE, Action.REVERT_RESIZE):
        return OutcomeState.RUNNING  # still VERIFY_RESIZE: the cloud has not picked it up yet
    return OutcomeState.FAILED
