"""THE routes table: every route of the API, its role, its inputs and its documented answers.

The app registers exactly these routes, the auth middleware reads the role from here, and the
OpenAPI document is generated from here; a test checks that all three agree.
"""

from __future__ import annotations

from fleet.api import events, inventory, operations, policies, reports, system
from fleet.api.route import Handler, HeaderParam, Reply, Route
from fleet.api.routes_schedules import POLICIES_OFF, SCHEDULE_ROUTES
from fleet.api.routes_webhooks import WEBHOOK_ROUTES
from fleet.api.schemas import (
    CreateOperationIn,
    DryRunOut,
    EndpointList,
    EventsQuery,
    FlavorList,
    HealthOut,
    OperationOut,
    OperationPage,
    OperationsQuery,
    ReadyOut,
    RetryIn,
    RetryOut,
    ServerPage,
    ServersQuery,
    SubJobPage,
    SubJobsQuery,
    TokenCreated,
    TokenCreateIn,
    TokenList,
    TokenOut,
    WhoAmIOut,
)
from fleet.api.schemas_approvals import DecisionIn
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
from fleet.api.schemas_reports import DriftList, DriftQuery, SavingsOut, SavingsQuery
from fleet.tokens import Role

V, OPS, A = Role.VIEWER, Role.OPERATOR, Role.ADMIN
OP = "/v1/operations/{operation_id}"

IDEMPOTENCY = HeaderParam(
    "Idempotency-Key", "the same key returns the same operation (a different request: 422)"
)
REPLAYABLE = ("Location", "Idempotent-Replayed")  # the latter "true" when the key was known
POLICY = "/v1/policies/{name}"  # a policy's id is its name
IF_MATCH = HeaderParam(
    "If-Match", "change only if the policy is at this version (its ETag)", max_length=20
)
CHANGED = Reply(200, "the policy after the change", PolicyOut, headers=("ETag",))
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


def _decision(verb: str, handler: Handler, summary: str) -> Route:
    """Approve or reject an operation pending approval (an optional `{"note"}`)."""
    forbidden = Reply(403, "the role does not allow it, or this token created the operation")
    replies = (Reply(200, "the operation after the decision", OperationOut), forbidden)
    return Route(
        "POST", f"{OP}/{verb}", handler, OPS, f"{verb}_operation", summary, "operations", replies,
        body=DecisionIn, body_optional=True, conflicts=True,
    )  # fmt: skip


POLICY_ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/v1/policies",
        policies.list_policies,
        V,
        "list_policies",
        "Scheduled policies (from config files and the API) with their next and last fire",
        "policies",
        (Reply(200, "every policy", PolicyList), POLICIES_OFF),
    ),
    Route(
        "POST",
        "/v1/policies",
        policies.create_policy,
        A,
        "create_policy",
        "Create a policy (a cron schedule in a time zone plus the operation it creates)",
        "policies",
        (Reply(201, "the new policy", PolicyOut, headers=("Location", "ETag")), POLICIES_OFF),
        body=PolicyIn,
        conflicts=True,
    ),
    Route(
        "GET",
        POLICY,
        policies.get_policy,
        V,
        "get_policy",
        "One policy with its next and last fire",
        "policies",
        (Reply(200, "the policy (ETag: its version)", PolicyOut, headers=("ETag",)), POLICIES_OFF),
    ),
    Route(
        "PUT",
        POLICY,
        policies.replace_policy,
        A,
        "replace_policy",
        "Replace an API policy's whole spec (file policies: edit the file; 409)",
        "policies",
        (CHANGED, POLICIES_OFF),
        body=PolicyIn,
        headers=(IF_MATCH,),
        conflicts=True,
    ),
    Route(
        "PATCH",
        POLICY,
        policies.patch_policy,
        A,
        "patch_policy",
        "Change some keys of an API policy (a JSON merge patch; checked and admitted as a PUT)",
        "policies",
        (CHANGED, POLICIES_OFF),
        body=PolicyPatchIn,
        headers=(IF_MATCH,),
        conflicts=True,
    ),
    Route(
        "DELETE",
        POLICY,
        policies.delete_policy,
        A,
        "delete_policy",
        "Delete an API policy (its fires stay as history)",
        "policies",
        (Reply(200, "the deleted policy", PolicyOut), POLICIES_OFF),
        conflicts=True,
    ),
    Route(
        "POST",
        f"{POLICY}/run",
        policies.run_policy,
        OPS,
        "run_policy",
        "Fire now (the current minute is the slot: twice in a minute is one fire)",
        "policies",
        (
            Reply(200, "the slot's fire; created false if it had fired already", RunOut),
            POLICIES_OFF,
        ),
        query=RunQuery,
    ),
    Route(
        "GET",
        f"{POLICY}/preview",
        policies.preview_policy,
        V,
        "preview_policy",
        "The next fire times (skipped ones and why) and the servers a fire now would act on",
        "policies",
        (Reply(200, "the preview", PreviewOut), Reply(502, "an endpoint failed"), POLICIES_OFF),
        query=PreviewQuery,
    ),
    Route(
        "GET",
        f"{POLICY}/fires",
        policies.list_fires,
        V,
        "list_policy_fires",
        "The policy's fires and skips, newest slot first",
        "policies",
        (Reply(200, "a page of fires", FireList), POLICIES_OFF),
        query=FiresQuery,
    ),
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
        (
            Reply(
                200,
                "Prometheus text format 0.0.4; OpenMetrics 1.0 (application/openmetrics-text) "
                "when the Accept header asks for it",
                media="text/plain",
            ),
        ),
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
        (
            Reply(200, "an event stream (state, progress, subjob, end)", media="text/event-stream"),
            Reply(
                429,
                "this token has [service] max_streams_per_token streams open",
                headers=("Retry-After",),
            ),
        ),
        query=EventsQuery,
        headers=(LAST_EVENT_ID,),
    ),
    _control("cancel", operations.cancel_operation, "Cancel: nothing new is sent"),
    _control("pause", operations.pause_operation, "Pause dispatching"),
    _control("resume", operations.resume_operation, "Resume dispatching"),
    _decision(
        "approve", operations.approve_operation, "Approve: it runs (not its creator's token)"
    ),
    _decision("reject", operations.reject_operation, "Reject: nothing is sent (not its creator's)"),
    Route(
        "POST",
        f"{OP}/retry-failed",
        operations.retry_failed,
        OPS,
        "retry_failed",
        "Give every failed sub-job another chance (unknown ones only with include_unknown)",
        "operations",
        (Reply(200, "how many were requeued, and the operation", RetryOut),),
        body=RetryIn,
        body_optional=True,
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
        "/v1/endpoints/{endpoint}/flavors",
        inventory.list_flavors,
        V,
        "list_flavors",
        "The flavors a resize on the endpoint may name, by id or by name",
        "inventory",
        (
            Reply(200, "the endpoint's flavors", FlavorList),
            Reply(404, "no such endpoint"),
            Reply(502, "the endpoint failed"),
        ),
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
        "/v1/whoami",
        system.whoami,
        V,
        "whoami",
        "The calling token's name and role",
        "system",
        (Reply(200, "who the token is", WhoAmIOut),),
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
    *POLICY_ROUTES,
    *WEBHOOK_ROUTES,
    Route(
        "GET",
        "/v1/reports/savings",
        reports.savings,
        V,
        "savings_report",
        "Hours servers stayed stopped because fleet stopped them, priced per flavor and hour",
        "reports",
        (Reply(200, "the report over the window", SavingsOut),),
        query=SavingsQuery,
    ),
    Route(
        "GET",
        "/v1/drift",
        reports.list_drift,
        V,
        "list_drift",
        "Servers that did not reach what an operation asked, or left it soon after",
        "reports",
        (Reply(200, "a page of drift records, newest first", DriftList),),
        query=DriftQuery,
    ),
    *SCHEDULE_ROUTES,
)
