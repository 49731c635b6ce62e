"""Errors as RFC 9457 `application/problem+json`, each naming the field at fault when there is one.

Handlers raise `Problem`; the middleware in `fleet.api.app` also turns aiohttp's own HTTP errors
(404, 405, 413), the engine's errors and pydantic validation errors into problems, so a client
never sees an HTML error page or a traceback. A 5xx carries no detail: the log has it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from aiohttp import web
from pydantic import ValidationError

from fleet.api.schemas import FieldError, ProblemOut
from fleet.drivers.errors import DriverError
from fleet.policies.schedules import ScheduleNotFound
from fleet.policies.service import PolicyNotFound
from fleet.policies.store import PolicyConflict
from fleet.policies.store_schedules import ScheduleConflict
from jobs.errors import Conflict, NotAllowed
from jobs.errors import FieldError as FieldErrorBase
from jobs.errors import NotFound as JobsNotFound

PROBLEM_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    502: "Cloud endpoint error",
    503: "Not ready",
}


class Problem(Exception):
    """An HTTP problem; `field` is the dotted path of the offending input, when there is one."""

    def __init__(
        self,
        status: int,
        detail: str,
        field: str | None = None,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.errors = tuple(errors)
        self.headers = dict(headers or {})

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", _TITLES.get(self.status, "error").lower()).strip("-")

    def body(self, instance: str) -> ProblemOut:
        errors = list(self.errors)
        if self.field is not None and not errors:
            message = self.detail.removeprefix(f"{self.field}: ")
            errors = [FieldError(field=self.field, message=message)]
        return ProblemOut(
            type=f"urn:fleet:problem:{self.slug}",
            title=_TITLES.get(self.status, "Error"),
            status=self.status,
            detail=self.detail,
            instance=instance,
            field=self.field,
            errors=errors,
        )

    def response(self, instance: str) -> web.Response:
        text = json.dumps(self.body(instance).model_dump(mode="json"))
        return web.Response(
            status=self.status, text=text, content_type=PROBLEM_TYPE, headers=self.headers
        )


def field_problem(field_path: str, message: str, status: int = 422) -> Problem:
    error = FieldError(field=field_path, message=message)
    return Problem(status, f"{field_path}: {message}", field=field_path, errors=[error])


_TYPE_TAG = re.compile(
    r"^(int|str|float|bool|none|list|dict|"
    r"(function|json-or-python|is-instance|literal|constrained|lax|strict|tagged-union|"
    r"list|dict|nullable|union|default|model|enum)[-\[].*)$"
)


def _loc_path(loc: Sequence[int | str], prefix: str) -> str:
    """pydantic's location -> a dotted path (`targets.ids[2]`), without union member tags."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _TYPE_TAG.match(part):
            continue
        else:
            out += f".{part}" if out else part
    return out or "body"


def validation_problem(exc: ValidationError, prefix: str = "") -> Problem:
    """422 naming every offending field (the first one in `field`); one entry per field."""
    seen: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        path = _loc_path(err["loc"], prefix)
        message = "unknown field" if err["type"] == "extra_forbidden" else str(err["msg"])
        if path in seen:
            if message not in seen[path]:
                seen[path] += f"; or {message}"
        else:
            seen[path] = message
    errors = [FieldError(field=k, message=v) for k, v in seen.items()]
    first = errors[0] if errors else FieldError(field=prefix or "body", message="invalid")
    return Problem(422, f"{first.field}: {first.message}", field=first.field, errors=errors)


def http_problem(exc: web.HTTPException) -> Problem:
    """aiohttp's own errors (no route, wrong method, body too large) as problems."""
    headers = {}
    if exc.status == 405:
        allow = exc.headers.get("Allow")
        if allow:
            headers["Allow"] = allow
    field_path = "body" if exc.status in (413, 415) else None
    detail = exc.reason or _TITLES.get(exc.status, "error")
    if exc.status == 413:
        detail = "body: the request body is larger than this service accepts"
    return Problem(exc.status, detail, field=field_path, headers=headers)


# The one table of errors raised below the API and the status each answers (first match wins). A
# `FieldError` (the base of every "this field is wrong" error) names its field.
ERROR_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (FieldErrorBase, 422),
    (JobsNotFound, 404),
    (PolicyNotFound, 404),
    (ScheduleNotFound, 404),
    (Conflict, 409),
    (PolicyConflict, 409),
    (NotAllowed, 403),
    (ScheduleConflict, 409),
    (DriverError, 502),
)


def problem_for(exc: Exception) -> Problem | None:
    """The problem an error below the API answers, or None (an unexpected error: 500)."""
    if isinstance(exc, ValidationError):
        return validation_problem(exc)
    for kind, status in ERROR_STATUS:
        if isinstance(exc, kind):
            if isinstance(exc, FieldErrorBase):
                return field_problem(exc.field or "body", exc.message, status)
            if isinstance(exc, DriverError):
                return Problem(status, f"an endpoint failed: {exc.message}")
            return Problem(status, str(exc))
    return None
