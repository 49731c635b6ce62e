"""The OpenAPI 3.1 document, generated from the routes table and the pydantic schemas.

Nothing here is written by hand per route: paths, methods, roles (as `x-fleet-role`), query and
header parameters, bodies and answers all come from `fleet.api.routes.ROUTES`, and every error is
the same `ProblemOut` served as `application/problem+json`. The configured endpoint names are
filled in as an `enum`, so the document describes this deployment, not a generic one.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from importlib import metadata

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from fleet.api.errors import PROBLEM_TYPE
from fleet.api.route import Reply, Route
from fleet.api.schemas import ProblemOut

JSONDict = dict[str, object]
REF = "#/components/schemas/{model}"

_ERRORS = {
    400: "malformed body",
    401: "no valid bearer token",
    403: "the token's role does not allow this",
    404: "no such resource",
    409: "not possible in the resource's current state",
    413: "body too large",
    415: "body is not JSON",
    422: "invalid input (the problem names the field)",
}


UNREADABLE = (
    "the HTTP request could not be read: a request line over 8,190 bytes (a URL with very long "
    "query parameters), a header over its limit, or broken framing; answered as text by the "
    "HTTP server before any handler, so on every route"
)
PLAIN = {"text/plain": {"schema": {"type": "string"}}}


def _version() -> str:
    try:
        return metadata.version("fleet")
    except metadata.PackageNotFoundError:
        return "0"


def _models(routes: Sequence[Route]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    found: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
        (ProblemOut, "serialization"): None
    }
    for route in routes:
        for model in (route.body, route.query):
            if model is not None:
                found[(model, "validation")] = None
        for reply in route.replies:
            if reply.model is not None:
                found[(reply.model, "serialization")] = None
    return list(found)


def _error_statuses(route: Route) -> list[int]:
    statuses: set[int] = set()
    if route.role is not None:
        statuses |= {401, 403}
    if route.body is not None:
        statuses |= {400, 413, 415, 422}
    if route.query is not None or route.headers:
        statuses.add(422)
    if route.path_params:
        statuses.add(404)
    if route.conflicts:
        statuses.add(409)
    return sorted(statuses)


def _content(
    reply: Reply, refs: dict[tuple[type[BaseModel], JsonSchemaMode], JSONDict]
) -> JSONDict:
    if reply.status >= 400 and reply.model is None:
        return {PROBLEM_TYPE: {"schema": refs[(ProblemOut, "serialization")]}}
    if reply.model is not None:
        return {reply.media: {"schema": refs[(reply.model, "serialization")]}}
    kind = "object" if reply.media == "application/json" else "string"
    return {reply.media: {"schema": {"type": kind}}}


def _parameters(route: Route, components: dict[str, JSONDict]) -> list[JSONDict]:
    params: list[JSONDict] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.path_params
    ]
    if route.query is not None:
        props = components[route.query.__name__].get("properties", {})
        assert isinstance(props, dict)
        for field_name, info in route.query.model_fields.items():
            name = info.alias or field_name  # `from` is a Python keyword: an alias
            schema = dict(props[name])
            description = schema.pop("description", None) or info.description
            param: JSONDict = {"name": name, "in": "query", "required": False, "schema": schema}
            if description:
                param["description"] = description
            params.append(param)
    for header in route.headers:
        params.append(
            {
                "name": header.name,
                "in": "header",
                "required": False,
                "description": header.description,
                "schema": {"type": "string", "minLength": 1, "maxLength": header.max_length},
            }
        )
    return params


def _operation(
    route: Route,
    refs: dict[tuple[type[BaseModel], JsonSchemaMode], JSONDict],
    components: dict[str, JSONDict],
) -> JSONDict:
    responses: JSONDict = {}
    for reply in route.replies:
        answer: JSONDict = {"description": reply.description, "content": _content(reply, refs)}
        if reply.headers:
            answer["headers"] = {h: {"schema": {"type": "string"}} for h in reply.headers}
        responses[str(reply.status)] = answer
    problem = {PROBLEM_TYPE: {"schema": refs[(ProblemOut, "serialization")]}}
    for status in _error_statuses(route):
        responses.setdefault(str(status), {"description": _ERRORS[status], "content": problem})
    bad = responses.get("400")
    if isinstance(bad, dict):  # a malformed body (problem+json), or an unreadable request
        bad = {**bad, "description": f"{bad['description']}; or {UNREADABLE}"}
        responses["400"] = {**bad, "content": {**bad["content"], **PLAIN}}
    else:
        responses["400"] = {"description": UNREADABLE, "content": PLAIN}
    op: JSONDict = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "x-fleet-role": route.role.value if route.role is not None else "none",
        "parameters": _parameters(route, components),
        "responses": responses,
    }
    if route.role is None:
        op["security"] = []
    if route.body is not None:
        op["requestBody"] = {
            "required": not route.body_optional,
            "content": {"application/json": {"schema": refs[(route.body, "validation")]}},
        }
    return op


def _endpoint_enum(components: dict[str, JSONDict], endpoints: Sequence[str]) -> None:
    """Name the configured endpoints where a client gives one."""
    if not endpoints:
        return
    for model, field in (("TargetsIn", "endpoints"), ("ServersQuery", "endpoint")):
        props = components.get(model, {}).get("properties")
        if isinstance(props, dict) and field in props:
            items = props[field].setdefault("items", {})
            items["enum"] = list(endpoints)


def document(routes: Sequence[Route], endpoints: Sequence[str] = ()) -> JSONDict:
    models = _models(routes)
    mapping, defs = models_json_schema(models, ref_template=REF)
    components: dict[str, JSONDict] = copy.deepcopy(defs.get("$defs", {}))
    _endpoint_enum(components, endpoints)
    refs: dict[tuple[type[BaseModel], JsonSchemaMode], JSONDict] = {
        (model, mode): dict(schema)
        for (model, mode), schema in mapping.items()
        if isinstance(model, type) and issubclass(model, BaseModel)
    }
    paths: dict[str, JSONDict] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fleet",
            "version": _version(),
            "description": "Bulk operations on cloud servers within every endpoint's rate limits.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
