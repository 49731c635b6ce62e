"""`/v1/reports/savings` and `/v1/drift`: what fleet's stops saved, and the servers that drifted
(read from `fleet.policies.reports`; tracking itself runs in the leader with the policies)."""

from __future__ import annotations

from aiohttp import web

from fleet.api.context import fleet_of, json_response, read_query
from fleet.api.errors import field_problem
from fleet.api.schemas_reports import DriftList, DriftQuery, SavingsOut, SavingsQuery
from fleet.policies.reports import Reports
from fleet.policies.savings import Prices
from fleet.policies.store_tracking import TrackingStore
from jobs.errors import FieldError


def reports_of(request: web.Request) -> Reports:
    fleet = fleet_of(request)
    spec = fleet.settings.prices
    prices = Prices(spec.currency, spec.hourly)
    return Reports(TrackingStore(fleet.store.db), prices, fleet.operations.clock)


async def savings(request: web.Request) -> web.Response:
    q = read_query(request, SavingsQuery)
    try:
        found = await reports_of(request).savings(q.start, q.end, q.group_by, q.tz)
    except FieldError as exc:
        raise field_problem(exc.field, exc.message) from None
    return json_response(SavingsOut.model_validate(found.to_json()))


async def list_drift(request: web.Request) -> web.Response:
    q = read_query(request, DriftQuery)
    items, more = await reports_of(request).drift(
        since=q.since, policy=q.policy, endpoint=q.endpoint, before=q.before, limit=q.limit
    )
    body = {
        "items": [d.to_json() for d in items],
        "next_cursor": None if more is None else str(more),
    }
    return json_response(DriftList.model_validate(body))
