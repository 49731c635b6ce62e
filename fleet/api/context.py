"""What handlers share: the app's typed keys, the caller's identity, and body/query/JSON helpers.

Bodies are read once, size-capped by aiohttp (`client_max_size`), checked to be JSON and then
validated by a strict pydantic model; query strings go through a lax model (they are text). Both
raise `Problem`s that name the field, so handlers only see valid values.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from fleet.api.errors import Problem, validation_problem
from fleet.service import Fleet
from fleet.tokens import Identity, TokenStore

if TYPE_CHECKING:
    from fleet.api.route import Route

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ApiConfig:
    """Knobs of the HTTP layer (not of the engine)."""

    max_body: int = 256 * 1024  # bytes; larger bodies get 413 before they are read
    dry_run_wait: float = 20.0  # seconds a dry-run request waits for its plan before a 202
    stream_interval: float = 0.5  # seconds between two looks at an operation's progress (SSE)
    keepalive: float = 15.0  # seconds between SSE comments on a quiet stream
    max_requests: int = 16  # requests handled at once; the others wait (fleet.api.limits)
    max_streams_per_token: int = 16  # open event streams per token; one more is 429


FLEET = web.AppKey("fleet", Fleet)
TOKENS = web.AppKey("tokens", TokenStore)
CONFIG = web.AppKey("api_config", ApiConfig)
ROUTES: web.AppKey[tuple[Route, ...]] = web.AppKey("routes")
STOPPING = web.AppKey("stopping", asyncio.Event)
CACHE: web.AppKey[dict[str, str]] = web.AppKey("cache")  # computed once per app (OpenAPI text)
IDENTITY = web.RequestKey("identity", Identity)


def fleet_of(request: web.Request) -> Fleet:
    return request.app[FLEET]


def identity_of(request: web.Request) -> Identity:
    return request[IDENTITY]


def routes_of(app: web.Application) -> tuple[Route, ...]:
    return app[ROUTES]


def json_response(
    model: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Every JSON answer goes through its schema model (what the OpenAPI document promises)."""
    return web.Response(
        status=status,
        text=model.model_dump_json(),
        content_type="application/json",
        headers=headers,
    )


async def read_body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """The body as `model`: 415 if not JSON, 400 if malformed, 422 naming the bad field.
    `optional`: no body at all (zero bytes) is the model's defaults."""
    raw = await request.read()  # aiohttp raises 413 past client_max_size
    if optional and not raw:
        return model()  # no body at all, whatever its declared type
    ctype = request.content_type
    if "Content-Type" in request.headers and not (
        ctype == "application/json" or ctype.endswith("+json")
    ):
        raise Problem(415, "body: send application/json", field="body")
    if not raw.strip():
        raise Problem(400, "body: a JSON object is required", field="body")
    try:
        json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, f"body: not valid JSON ({exc})", field="body") from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_problem(exc) from None


def read_query(request: web.Request, model: type[M]) -> M:
    """The query string as `model` (list fields take repeated parameters); 422 naming the field."""
    data: dict[str, object] = {}
    aliases = {f.alias: f for f in model.model_fields.values() if f.alias}
    for name in request.query:
        info = model.model_fields.get(name) or aliases.get(name)
        values = request.query.getall(name)
        is_list = info is not None and _is_list(info.annotation)
        data[name] = values if is_list else values[-1]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from None


def _is_list(annotation: object) -> bool:
    return getattr(annotation, "__origin__", None) is list
