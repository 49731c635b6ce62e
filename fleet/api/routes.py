"""THE routes table: every route of the API, its role, its inputs and its documented answers.

The app registers exactly these routes, the auth middleware reads the role from here, and the
OpenAPI document is generated from here; a test checks that all three agree.
"""

from __future__ import annotations

from fleet.api import events, inventory, operations, system
from fleet.api.route import Handler, HeaderParam, Reply, Route
from fleet.api.schemas import (
    CreateOperationIn,
    DryRunOut,
    EndpointList,
    EventsQuery,
    HealthOut,
    OperationOut,
    OperationPage,
    OperationsQuery,
    ReadyOut,
    RetryOut,
    ServerPage,
    ServersQuery,
    SubJobPage,
    SubJobsQuery,
    TokenCreated,
    TokenCreateIn,
    TokenList,
    TokenOut,
)
from fleet.api.tokens import Role

V, OPS, A = Role.VIEWER, Role.OPERATOR, Role.ADMIN
OP = "/v1/operations/{operation_id}"

IDEMPOTENCY = HeaderParam(
    "Idempotency-Key", "the same key returns the same operation (a different request: 422)"
)
REPLAYABLE = ("Location", "Idempotent-Replayed")  # the latter "true" when the key was known
LAST_EVENT_ID = HeaderParam("Last-Event-ID", "resume after this event id", max_length=18)


def _control(verb: str, handler: Handler, summary: str) -> Route:
    return Route(
        "POST",
        f"{OP}/{verb}",
        handler,
        OPS,
        f"{verb.replace('-', '_')}_operation",
        summary,
        "operations",
        (Reply(200, "the operation after the change", OperationOut),),
        conflicts=True,
    )


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/healthz",
        system.healthz,
        None,
        "healthz",
        "Liveness (no token needed)",
        "system",
        (Reply(200, "the process answers", HealthOut),),
    ),
    Route(
        "GET",
        "/readyz",
        system.readyz,
        V,
        "readyz",
        "Readiness: database reachable; engine and endpoints reported",
        "system",
        (Reply(200, "ready", ReadyOut), Reply(503, "not ready", ReadyOut)),
    ),
    Route(
        "GET",
        "/metrics",
        system.prometheus,
        V,
        "metrics",
        "Prometheus metrics",
        "system",
        (Reply(200, "text exposition format 0.0.4", media="text/plain"),),
    ),
    Route(
        "GET",
        "/openapi.json",
        system.openapi,
        V,
        "openapi",
        "This document",
        "system",
        (Reply(200, "OpenAPI 3.1 document"),),
    ),
    Route(
        "POST",
        "/v1/operations",
        operations.create_operation,
        OPS,
        "create_operation",
        "Start an operation (202), or plan it without acting (dry_run: 200 with the plan)",
        "operations",
        (
            Reply(
                200, "dry run: the plan (null while still planning)", DryRunOut, headers=REPLAYABLE
            ),
            Reply(202, "accepted: planning and dispatch follow", OperationOut, headers=REPLAYABLE),
        ),
        body=CreateOperationIn,
        headers=(IDEMPOTENCY,),
    ),
    Route(
        "GET",
        "/v1/operations",
        operations.list_operations,
        V,
        "list_operations",
        "Operations, newest first (filter by state, cursor paging)",
        "operations",
        (Reply(200, "a page of operations", OperationPage),),
        query=OperationsQuery,
    ),
    Route(
        "GET",
        OP,
        operations.get_operation,
        V,
        "get_operation",
        "One operation: counts by state, progress, ETA, timestamps, creator",
        "operations",
        (Reply(200, "the operation", OperationOut),),
    ),
    Route(
        "GET",
        f"{OP}/subjobs",
        operations.list_subjobs,
        V,
        "list_subjobs",
        "Per-server sub-jobs with their result and reason (filter by state, cursor paging)",
        "operations",
        (Reply(200, "a page of sub-jobs", SubJobPage),),
        query=SubJobsQuery,
    ),
    Route(
        "GET",
        f"{OP}/events",
        events.operation_events,
        V,
        "operation_events",
        "Server-sent events: state, progress and failures until the operation ends",
        "operations",
        (Reply(200, "an event stream (state, progress, subjob, end)", media="text/event-stream"),),
        query=EventsQuery,
        headers=(LAST_EVENT_ID,),
    ),
    _control("cancel", operations.cancel_operation, "Cancel: nothing new is sent"),
    _control("pause", operations.pause_operation, "Pause dispatching"),
    _control("resume", operations.resume_operation, "Resume dispatching"),
    Route(
        "POST",
        f"{OP}/retry-failed",
        operations.retry_failed,
        OPS,
        "retry_failed",
        "Give every failed sub-job another chance",
        "operations",
        (Reply(200, "how many were requeued, and the operation", RetryOut),),
        conflicts=True,
    ),
    Route(
        "GET",
        "/v1/endpoints",
        inventory.list_endpoints,
        V,
        "list_endpoints",
        "Endpoints with their rate keys: budgets, use, queue, throttling",
        "inventory",
        (Reply(200, "every configured endpoint", EndpointList),),
    ),
    Route(
        "GET",
        "/v1/servers",
        inventory.list_servers,
        V,
        "list_servers",
        "Servers read through the drivers, selected like operation targets",
        "inventory",
        (Reply(200, "a page of servers", ServerPage), Reply(502, "an endpoint failed")),
        query=ServersQuery,
    ),
    Route(
        "GET",
        "/v1/tokens",
        system.list_tokens,
        A,
        "list_tokens",
        "API tokens (names and roles; never secrets)",
        "admin",
        (Reply(200, "every token", TokenList),),
    ),
    Route(
        "POST",
        "/v1/tokens",
        system.create_token,
        A,
        "create_token",
        "Create a token; its secret is in this answer only",
        "admin",
        (Reply(201, "the new token", TokenCreated, headers=("Location",)),),
        body=TokenCreateIn,
        conflicts=True,
    ),
    Route(
        "DELETE",
        "/v1/tokens/{name}",
        system.revoke_token,
        A,
        "revoke_token",
        "Revoke a token",
        "admin",
        (Reply(200, "the revoked token", TokenOut),),
    ),
)
