"""`/v1/policies`: scheduled policies (CRUD for admins, run now for operators, reads for viewers).

Every handler calls `fleet.policies` (`PolicyService`); its errors become problems here:
`PolicyError` -> 422 naming the field, `PolicyNotFound` -> 404, `PolicyConflict` -> 409 (a file
policy, a name taken, a version mismatch, a restore pairing). When the service runs with
`[policies] enabled = false` there is no policy engine and every policy route answers
**503** ("policies are disabled"): the routes exist (the document is the same on every
deployment), the feature is switched off, which a 404 would hide.
"""

from __future__ import annotations

import json

from aiohttp import web
from pydantic import ValidationError

from fleet.api.context import fleet_of, identity_of, json_response, read_body, read_query
from fleet.api.errors import Problem, field_problem, validation_problem
from fleet.api.schemas_policies import (
    FireList,
    FiresQuery,
    PolicyIn,
    PolicyList,
    PolicyOut,
    PolicyPatchIn,
    PreviewOut,
    PreviewQuery,
    RunOut,
    RunQuery,
)
from fleet.api.validation import if_match_version
from fleet.policies.model import PolicyError
from fleet.policies.service import PolicyService
from fleet.policies.views import PolicyView

DISABLED = "policies are disabled on this service ([policies] enabled = false)"


def policy_path(policy_id: str) -> str:
    return f"/v1/policies/{policy_id}"


def _service(request: web.Request) -> PolicyService:
    service = fleet_of(request).policies
    if service is None:
        raise Problem(503, DISABLED)
    return service


def _out(view: PolicyView) -> PolicyOut:
    return PolicyOut.model_validate(view.to_json())


def _answer(view: PolicyView, status: int = 200, location: bool = False) -> web.Response:
    """The policy, with its version as the `ETag` (what `If-Match` takes back)."""
    headers = {"ETag": f'"{view.record.version}"'}
    if location:
        headers["Location"] = policy_path(view.id)
    return json_response(_out(view), status, headers)


def _shaped(merged: dict[str, object]) -> dict[str, object]:
    """A merged PATCH body checked as a whole PUT body would be (422 naming the field)."""
    try:
        return PolicyIn.model_validate_json(json.dumps(merged)).raw()
    except ValidationError as exc:
        raise validation_problem(exc) from None


async def list_policies(request: web.Request) -> web.Response:
    service = _service(request)
    views = await service.list_policies()
    return json_response(PolicyList(items=[_out(v) for v in views]))


async def get_policy(request: web.Request) -> web.Response:
    service = _service(request)
    view = await service.get_policy(request.match_info["name"])
    return _answer(view)


async def create_policy(request: web.Request) -> web.Response:
    service = _service(request)
    body = await read_body(request, PolicyIn)
    view = await service.create_policy(body.raw(), by=identity_of(request).name)
    return _answer(view, 201, location=True)


async def replace_policy(request: web.Request) -> web.Response:
    service = _service(request)
    policy_id = request.match_info["name"]
    expected = if_match_version(request, "policy")
    body = await read_body(request, PolicyIn)
    view = await service.replace_policy(
        policy_id, body.raw(), identity_of(request).name, expected_version=expected
    )
    return _answer(view)


async def patch_policy(request: web.Request) -> web.Response:
    """A merge patch onto the stored spec, then admitted and stored exactly as a PUT of the
    result (a disabled result is not admitted, as with PUT)."""
    service = _service(request)
    policy_id = request.match_info["name"]
    expected = if_match_version(request, "policy")
    body = await read_body(request, PolicyPatchIn)
    view = await service.patch_policy(
        policy_id, body.root, identity_of(request).name, expected_version=expected, shape=_shaped
    )
    return _answer(view)


async def delete_policy(request: web.Request) -> web.Response:
    """Answers the policy as it was; its fires stay as history."""
    service = _service(request)
    policy_id = request.match_info["name"]
    view = await service.get_policy(policy_id)
    await service.delete_policy(policy_id, identity_of(request).name)
    return json_response(_out(view))


async def run_policy(request: web.Request) -> web.Response:
    """Fire now; the same minute twice is one fire (`created` false the second time)."""
    service = _service(request)
    q = read_query(request, RunQuery)
    try:
        result = await service.run_now(
            request.match_info["name"], identity_of(request).name, slot=q.slot
        )
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, PolicyError):
            raise
        raise field_problem("slot", "not a fire time of this policy") from None
    return json_response(RunOut.model_validate(result.to_json()))


async def preview_policy(request: web.Request) -> web.Response:
    service = _service(request)
    q = read_query(request, PreviewQuery)
    preview = await service.preview(request.match_info["name"], n=q.n, servers=q.servers)
    return json_response(PreviewOut.model_validate(preview.to_json()))


async def list_fires(request: web.Request) -> web.Response:
    service = _service(request)
    q = read_query(request, FiresQuery)
    fires, more = await service.fires_page(request.match_info["name"], q.limit, q.before)
    items = [f.to_json() for f in fires]
    next_cursor = None if more is None else str(more)
    return json_response(FireList.model_validate({"items": items, "next_cursor": next_cursor}))
