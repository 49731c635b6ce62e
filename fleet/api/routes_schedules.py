"""The `/v1/schedules` rows of the routes table (`fleet.api.routes` includes them)."""

from __future__ import annotations

from fleet.api import schedules
from fleet.api.route import HeaderParam, Reply, Route
from fleet.api.schemas_schedules import (
    ScheduleIn,
    ScheduleList,
    ScheduleOut,
    SchedulePatchIn,
    SchedulePreviewOut,
    SchedulePreviewQuery,
)
from fleet.tokens import Role

V, A = Role.VIEWER, Role.ADMIN
POLICIES_OFF = Reply(503, "policies are disabled on this service ([policies] enabled = false)")
SCHEDULE = "/v1/schedules/{name}"  # a schedule's id is its name
SCHEDULE_IF_MATCH = HeaderParam(
    "If-Match", "change only if the schedule is at this version (its ETag)", max_length=20
)
SCHEDULE_ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/v1/schedules",
        schedules.list_schedules,
        V,
        "list_schedules",
        "Named per-server schedules (from policy files and the API) with their next transitions",
        "schedules",
        (Reply(200, "every schedule", ScheduleList), POLICIES_OFF),
    ),
    Route(
        "POST",
        "/v1/schedules",
        schedules.create_schedule,
        A,
        "create_schedule",
        "Create a schedule (running periods in a time zone) for servers tagged fleet-schedule",
        "schedules",
        (Reply(201, "the new schedule", ScheduleOut, headers=("Location", "ETag")), POLICIES_OFF),
        body=ScheduleIn,
        conflicts=True,
    ),
    Route(
        "GET",
        SCHEDULE,
        schedules.get_schedule,
        V,
        "get_schedule",
        "One schedule: its desired state now and its next transitions",
        "schedules",
        (
            Reply(200, "the schedule (ETag: its version)", ScheduleOut, headers=("ETag",)),
            POLICIES_OFF,
        ),
    ),
    Route(
        "PUT",
        SCHEDULE,
        schedules.replace_schedule,
        A,
        "replace_schedule",
        "Replace an API schedule (file schedules: edit the file; 409)",
        "schedules",
        (Reply(200, "the schedule after the change", ScheduleOut, headers=("ETag",)), POLICIES_OFF),
        body=ScheduleIn,
        headers=(SCHEDULE_IF_MATCH,),
        conflicts=True,
    ),
    Route(
        "PATCH",
        SCHEDULE,
        schedules.patch_schedule,
        A,
        "patch_schedule",
        "Change some keys of an API schedule (a JSON merge patch; checked as a PUT)",
        "schedules",
        (Reply(200, "the schedule after the change", ScheduleOut, headers=("ETag",)), POLICIES_OFF),
        body=SchedulePatchIn,
        headers=(SCHEDULE_IF_MATCH,),
        conflicts=True,
    ),
    Route(
        "DELETE",
        SCHEDULE,
        schedules.delete_schedule,
        A,
        "delete_schedule",
        "Delete an API schedule (servers still tagged with it are then reported, left alone)",
        "schedules",
        (Reply(200, "the deleted schedule", ScheduleOut), POLICIES_OFF),
        conflicts=True,
    ),
    Route(
        "GET",
        f"{SCHEDULE}/preview",
        schedules.preview_schedule,
        V,
        "preview_schedule",
        "Every server tagged with the schedule: desired state now and the next transitions",
        "schedules",
        (
            Reply(200, "the preview", SchedulePreviewOut),
            Reply(502, "an endpoint failed"),
            POLICIES_OFF,
        ),
        query=SchedulePreviewQuery,
    ),
)
