"""A create-operation request -> `NewOperation`, through the one door (`fleet.engine.admission`).

Shape is pydantic's job (`CreateOperationIn`); meaning is checked by `Admission.admit`, the same
function that admits a policy when it is created and at each fire. Every refusal is a 422 naming
the field as the client wrote it (`targets.endpoints[1]`, `strategy.waves[0]`).
"""

from __future__ import annotations

from aiohttp import web

from fleet.api.errors import field_problem
from fleet.api.schemas import CreateOperationIn, TargetsIn
from fleet.engine.admission import ActRequest, Admitted
from fleet.service import Fleet
from fleet.tokens import Identity, Role
from jobs.errors import FieldError
from jobs.types import JSONObject, JSONValue

MAX_IDEMPOTENCY_KEY = 255


def selector_json(targets: TargetsIn) -> JSONObject:
    """Only what the client gave (so `exclude_tag` absent keeps the default, null disables it)."""
    dumped = targets.model_dump(mode="json")
    out: JSONObject = {}
    for name in targets.model_fields_set:
        value: JSONValue = dumped[name]
        if name == "exclude_tag" or value not in ([], {}, None):
            out[name] = value
        elif name == "ids":
            out[name] = value  # given but empty: refused, naming it
    return out


def idempotency_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not raw or len(raw) > MAX_IDEMPOTENCY_KEY or not raw.isprintable():
        raise field_problem(
            "Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters"
        )
    return raw


async def new_operation(
    body: CreateOperationIn, fleet: Fleet, who: Identity, key: str | None
) -> Admitted:
    """Everything checked; nothing written."""
    request = ActRequest(
        action=body.action,
        targets=selector_json(body.targets),
        params=body.params.model_dump(mode="json", exclude_none=True),
        strategy=body.strategy.model_dump(mode="json"),
        guard=None if body.guard is None else body.guard.model_dump(mode="json"),
        dry_run=body.dry_run,
        reason=body.reason,
        created_by=who.name,
        idempotency_key=key,
        admin=who.role is Role.ADMIN,
    )
    try:
        return await fleet.admission.check(request)
    except FieldError as exc:
        raise field_problem(exc.field, exc.message) from None


def if_match_version(request: web.Request, what: str) -> int | None:
    """`If-Match: 3` (or `"3"`, `W/"3"`): write only if `what` is still at that version."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 18:
        raise field_problem("If-Match", f"the {what}'s version, a number (from GET)")
    return int(text)
