"""`/v1/schedules`: named per-server schedules (CRUD for admins, reads and preview for viewers).

Every handler calls the policy engine's `ScheduleService`: `ScheduleError` -> 422 naming the
field, `ScheduleNotFound` -> 404, `ScheduleConflict` -> 409 (a file schedule, a name taken, a
version mismatch). With `[policies] enabled = false` every route answers 503, as the policy
routes do.
"""

from __future__ import annotations

import json

from aiohttp import web
from pydantic import ValidationError

from fleet.api.context import fleet_of, identity_of, json_response, read_body, read_query
from fleet.api.errors import Problem, validation_problem
from fleet.api.schemas_schedules import (
    ScheduleIn,
    ScheduleList,
    ScheduleOut,
    SchedulePatchIn,
    SchedulePreviewOut,
    SchedulePreviewQuery,
)
from fleet.api.validation import if_match_version
from fleet.policies.schedules import ScheduleService, ScheduleView

DISABLED = "policies are disabled on this service ([policies] enabled = false)"


def _service(request: web.Request) -> ScheduleService:
    policies = fleet_of(request).policies
    if policies is None:
        raise Problem(503, DISABLED)
    return policies.schedules


def _answer(view: ScheduleView, status: int = 200, location: bool = False) -> web.Response:
    headers = {"ETag": f'"{view.record.version}"'}
    if location:
        headers["Location"] = f"/v1/schedules/{view.record.name}"
    return json_response(ScheduleOut.model_validate(view.to_json()), status, headers)


async def list_schedules(request: web.Request) -> web.Response:
    views = await _service(request).list_schedules()
    items = [ScheduleOut.model_validate(v.to_json()) for v in views]
    return json_response(ScheduleList(items=items))


async def get_schedule(request: web.Request) -> web.Response:
    return _answer(await _service(request).get_schedule(request.match_info["name"]))


async def create_schedule(request: web.Request) -> web.Response:
    service = _service(request)
    body = await read_body(request, ScheduleIn)
    view = await service.create_schedule(body.raw(), by=identity_of(request).name)
    return _answer(view, 201, location=True)


async def replace_schedule(request: web.Request) -> web.Response:
    service = _service(request)
    expected = if_match_version(request, "schedule")
    body = await read_body(request, ScheduleIn)
    view = await service.replace_schedule(
        request.match_info["name"], body.raw(), identity_of(request).name, expected
    )
    return _answer(view)


def _shaped(merged: dict[str, object]) -> dict[str, object]:
    """A merged PATCH body checked as a whole PUT body would be (422 naming the field)."""
    try:
        return ScheduleIn.model_validate_json(json.dumps(merged)).raw()
    except ValidationError as exc:
        raise validation_problem(exc) from None


async def patch_schedule(request: web.Request) -> web.Response:
    """A merge patch onto the stored spec, then checked and stored exactly as a PUT of the
    result, under the same version rules (`If-Match`, else the version merged onto)."""
    service = _service(request)
    expected = if_match_version(request, "schedule")
    body = await read_body(request, SchedulePatchIn)
    view = await service.patch_schedule(
        request.match_info["name"], body.root, identity_of(request).name, expected, _shaped
    )
    return _answer(view)


async def delete_schedule(request: web.Request) -> web.Response:
    """Answers the schedule as it was; servers still tagged with it are reported as tagged with
    an unknown schedule from then on."""
    service = _service(request)
    view = await service.delete_schedule(request.match_info["name"], identity_of(request).name)
    return json_response(ScheduleOut.model_validate(view.to_json()))


async def preview_schedule(request: web.Request) -> web.Response:
    service = _service(request)
    q = read_query(request, SchedulePreviewQuery)
    preview = await service.preview(request.match_info["name"], n=q.n, servers=q.servers)
    return json_response(SchedulePreviewOut.model_validate(preview))
