"""The OpenAPI document matches the routes the app really serves, and the schemas it promises."""

from __future__ import annotations

from fleet.api import console
from fleet.api.app import build_app
from fleet.api.routes import ROUTES
from fleet.api.schemas import ActionName
from fleet.drivers.registry import KINDS
from tests.api.conftest import Api


def _walk_refs(node: object, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.add(ref)
        for value in node.values():
            _walk_refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _walk_refs(value, out)


async def test_document_lists_exactly_the_served_routes(api: Api) -> None:
    reply = await api.get("/openapi.json")
    assert reply.status == 200
    doc = reply.body
    assert str(doc["openapi"]).startswith("3.1")
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    served = {
        (r.method, r.resource.canonical)
        for r in build_app().router.routes()
        if r.resource is not None and r.resource.canonical not in console.PATHS
    }
    table = {(r.method, r.path) for r in ROUTES}
    assert documented == served == table


async def test_document_roles_and_errors_follow_the_table(api: Api) -> None:
    doc = (await api.get("/openapi.json")).body
    for route in ROUTES:
        op = doc["paths"][route.path][route.method.lower()]
        responses = op["responses"]
        if route.role is None:
            assert op["security"] == [] and op["x-fleet-role"] == "none"
            assert "401" not in responses
        else:
            assert op["x-fleet-role"] == route.role.value
            assert {"401", "403"} <= set(responses)
            problem = responses["401"]["content"]["application/problem+json"]["schema"]
            assert problem == {"$ref": "#/components/schemas/ProblemOut"}
        if route.body is not None:
            assert {"400", "413", "415", "422"} <= set(responses)
            assert op["requestBody"]["required"] is not route.body_optional
        if route.path_params:
            assert "404" in responses
            names = [p["name"] for p in op["parameters"] if p["in"] == "path"]
            assert names == route.path_params
        for reply in route.replies:
            assert str(reply.status) in responses


async def test_every_reference_resolves_and_endpoints_are_named(api: Api) -> None:
    doc = (await api.get("/openapi.json")).body
    refs: set[str] = set()
    _walk_refs(doc, refs)
    schemas = doc["components"]["schemas"]
    assert refs and all(r.startswith("#/components/schemas/") for r in refs)
    assert {r.rsplit("/", 1)[1] for r in refs} <= set(schemas)
    targets = schemas["TargetsIn"]["properties"]["endpoints"]["items"]
    assert targets["enum"] == sorted(api.fleet.drivers)
    query = doc["paths"]["/v1/servers"]["get"]["parameters"]
    endpoint = next(p for p in query if p["name"] == "endpoint")
    assert endpoint["schema"]["items"]["enum"] == sorted(api.fleet.drivers)
    create = doc["paths"]["/v1/operations"]["post"]
    headers = [p["name"] for p in create["parameters"] if p["in"] == "header"]
    assert headers == ["Idempotency-Key"]


def test_action_names_are_the_declared_kinds() -> None:
    from fleet.api.schemas import CreateOperationIn

    schema = CreateOperationIn.model_json_schema()["properties"]["action"]
    assert schema["enum"] == list(KINDS)
    assert ActionName.__origin__ is str  # type: ignore[attr-defined]


async def test_responses_fit_their_documented_models(api: Api) -> None:
    """What the handlers send parses back with the very models the document is made from."""
    from fleet.api import schemas

    for path, model in (
        ("/v1/endpoints", schemas.EndpointList),
        ("/v1/operations", schemas.OperationPage),
        ("/v1/servers", schemas.ServerPage),
        ("/readyz", schemas.ReadyOut),
        ("/healthz", schemas.HealthOut),
    ):
        reply = await api.get(path)
        assert reply.status == 200, (path, reply.body)
        model.model_validate(reply.body)
    bad = await api.get("/v1/operations", params={"limit": "0"})
    schemas.ProblemOut.model_validate(bad.body)


async def test_a_request_line_over_the_limit_is_a_documented_400(api: Api) -> None:
    """The HTTP server refuses a request line over 8,190 bytes before any handler, as text: the
    document says so on every route (a fuzzer sending long query strings found it undocumented)."""
    long_names = "&".join(f"name=server-{n:05d}" for n in range(800))
    reply = await api.get(f"/v1/servers?{long_names}")
    assert reply.status == 400 and reply.content_type == "text/plain", reply
    doc = (await api.get("/openapi.json")).body
    for route in ROUTES:
        bad = doc["paths"][route.path][route.method.lower()]["responses"]["400"]
        assert "text/plain" in bad["content"], route.path
        if route.body is not None:  # a malformed body stays a problem
            assert "application/problem+json" in bad["content"], route.path
