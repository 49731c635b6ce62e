"""`/v1/operations`: create (or dry-run), list, show, sub-jobs, and the control verbs.

Creating validates everything first (`fleet.api.validation`) and writes one row; the planning loop
resolves the targets in the background, so a real operation answers 202 at once. A dry run waits
(bounded) for its plan and answers 200 with it: targets, skips by reason, calls per rate key, waves
and the ETA the rate limits allow.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json

from aiohttp import web

from fleet.api.context import (
    CONFIG,
    fleet_of,
    identity_of,
    json_response,
    read_body,
    read_query,
)
from fleet.api.errors import Problem, field_problem
from fleet.api.limits import idle
from fleet.api.schemas import (
    CreateOperationIn,
    DryRunOut,
    OperationOut,
    OperationPage,
    OperationsQuery,
    QuotaOut,
    RetryIn,
    RetryOut,
    SubJobPage,
    SubJobsQuery,
)
from fleet.api.schemas_approvals import DecisionIn
from fleet.api.validation import idempotency_key, new_operation
from fleet.api.views import operation_out, operation_path, plan_out, subjob_out
from fleet.service import Fleet
from jobs.errors import IdempotencyConflict
from jobs.records import OperationView
from jobs.states import OperationState

FILTER_PAGE = 200  # store rows read per step while filtering operations by state
MAX_PAGE = 1000  # the store's largest page


async def _wait_planned(
    request: web.Request, fleet: Fleet, operation_id: str, seconds: float
) -> OperationView:
    """The operation once planning is over, or as it is when `seconds` ran out. The request's
    slot is given back while it sleeps (`fleet.api.limits.idle`)."""
    view = await fleet.operations.get(operation_id)
    delay = 0.02
    try:
        async with asyncio.timeout(seconds):
            while view.state is OperationState.PLANNING:
                async with idle(request):
                    await asyncio.sleep(delay)
                delay = min(0.25, delay * 2)
                view = await fleet.operations.get(operation_id)
    except TimeoutError:
        pass
    return view


async def create_operation(request: web.Request) -> web.Response:
    fleet = fleet_of(request)
    body = await read_body(request, CreateOperationIn)
    key = idempotency_key(request.headers.get("Idempotency-Key"))
    admitted = await new_operation(body, fleet, identity_of(request), key)
    new = admitted.operation
    try:
        view, created = await fleet.operations.create(new)
    except IdempotencyConflict as exc:
        raise field_problem("Idempotency-Key", str(exc)) from None
    headers = {"Location": operation_path(view.operation.id)}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    if not new.dry_run:
        return json_response(_out(fleet, view), 202, headers)
    view = await _wait_planned(request, fleet, view.operation.id, request.app[CONFIG].dry_run_wait)
    summary = view.operation.summary
    count = new.params.get("count")
    out = DryRunOut(
        operation=_out(fleet, view),
        plan=None if summary is None else plan_out(summary),
        quota=[
            QuotaOut(endpoint=name, used=q.used, limit=q.limit, room=q.room, requested=count)
            for name, q in sorted(admitted.quotas.items())
            if isinstance(count, int)
        ],
    )
    return json_response(out, 200, headers)  # plan: null if planning outlasted the wait


def _encode_cursor(store_cursor: str | None, skip: int) -> str:
    raw = json.dumps([store_cursor, skip]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[str | None, int]:
    if not cursor:
        return None, 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        store_cursor, skip = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise field_problem("cursor", "not a cursor this server returned") from None
    valid = store_cursor is None or isinstance(store_cursor, str)
    if not valid or not isinstance(skip, int) or not 0 <= skip < MAX_PAGE:
        raise field_problem("cursor", "not a cursor this server returned")
    return store_cursor, skip


async def list_operations(request: web.Request) -> web.Response:
    """Newest first. A state filter reads store pages until `limit` operations match; the cursor
    remembers the store page and how far into it the last answer went."""
    fleet = fleet_of(request)
    q = read_query(request, OperationsQuery)
    store_cursor, skip = _decode_cursor(q.cursor)
    items: list[OperationView] = []
    next_cursor: str | None = None
    while True:
        size = min(MAX_PAGE, skip + (FILTER_PAGE if q.state is not None else q.limit))
        page = await fleet.operations.list(store_cursor, size)
        rows = page.items
        for index in range(skip, len(rows)):
            if q.state is None or rows[index].state is q.state:
                items.append(rows[index])
            if len(items) == q.limit:
                if index + 1 < len(rows):
                    next_cursor = _encode_cursor(store_cursor, index + 1)
                elif page.next_cursor is not None:
                    next_cursor = _encode_cursor(page.next_cursor, 0)
                break
        if len(items) == q.limit or page.next_cursor is None:
            break
        store_cursor, skip = page.next_cursor, 0
    now = fleet.operations.clock.now()
    out = OperationPage(
        items=[operation_out(v, now, fleet.runtime.waiting(v.operation.id)) for v in items],
        next_cursor=next_cursor,
    )
    return json_response(out)


def _out(fleet: Fleet, view: OperationView) -> OperationOut:
    """The operation, with why its planning waits (when this process plans it)."""
    waiting = fleet.runtime.waiting(view.operation.id)
    return operation_out(view, fleet.operations.clock.now(), waiting)


async def get_operation(request: web.Request) -> web.Response:
    fleet = fleet_of(request)
    view = await fleet.operations.get(request.match_info["operation_id"])
    return json_response(_out(fleet, view))


async def list_subjobs(request: web.Request) -> web.Response:
    fleet = fleet_of(request)
    q = read_query(request, SubJobsQuery)
    page = await fleet.operations.subjobs(
        request.match_info["operation_id"], q.state, q.cursor, q.limit
    )
    out = SubJobPage(items=[subjob_out(s) for s in page.items], next_cursor=page.next_cursor)
    return json_response(out)


async def _control(request: web.Request, verb: str) -> web.Response:
    fleet = fleet_of(request)
    op_id, by = request.match_info["operation_id"], identity_of(request).name
    ops = fleet.operations
    if verb == "cancel":
        view = await ops.cancel(op_id, by)
    elif verb == "pause":
        view = await ops.pause(op_id, by)
    elif verb == "resume":
        view = await ops.resume(op_id, by)
    else:
        raise Problem(500, f"unknown control verb {verb}")
    return json_response(operation_out(view, ops.clock.now()))


async def cancel_operation(request: web.Request) -> web.Response:
    return await _control(request, "cancel")


async def pause_operation(request: web.Request) -> web.Response:
    return await _control(request, "pause")


async def resume_operation(request: web.Request) -> web.Response:
    return await _control(request, "resume")


async def _decide(request: web.Request, approve: bool) -> web.Response:
    """Approve or reject: the token that created the operation may do neither (403)."""
    fleet = fleet_of(request)
    op_id, by = request.match_info["operation_id"], identity_of(request).name
    body = await read_body(request, DecisionIn, optional=True)
    ops = fleet.operations
    if approve:
        view = await ops.approve(op_id, by, body.note)
    else:
        view = await ops.reject(op_id, by, body.note)
    return json_response(operation_out(view, ops.clock.now()))


async def approve_operation(request: web.Request) -> web.Response:
    return await _decide(request, approve=True)


async def reject_operation(request: web.Request) -> web.Response:
    return await _decide(request, approve=False)


async def retry_failed(request: web.Request) -> web.Response:
    fleet = fleet_of(request)
    op_id = request.match_info["operation_id"]
    body = await read_body(request, RetryIn, optional=True)
    count = await fleet.operations.retry_failed(
        op_id, identity_of(request).name, include_unknown=body.include_unknown
    )
    view = await fleet.operations.get(op_id)
    out = RetryOut(requeued=count, operation=operation_out(view, fleet.operations.clock.now()))
    return json_response(out)
