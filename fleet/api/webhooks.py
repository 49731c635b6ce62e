"""`/v1/webhooks`: subscriptions (admins only: they name where fleet sends and with what secret),
their delivery log and a test send. Errors come from `fleet.webhooks.service`: a `FieldError`
is 422 naming the field, an unknown id 404."""

from __future__ import annotations

from aiohttp import web

from fleet.api.context import fleet_of, identity_of, json_response, read_body, read_query
from fleet.api.errors import Problem
from fleet.api.schemas_webhooks import (
    DeliveriesQuery,
    DeliveryList,
    DeliveryOut,
    WebhookIn,
    WebhookList,
    WebhookOut,
    WebhookPatchIn,
)
from fleet.webhooks.records import WebhookRecord
from fleet.webhooks.service import WebhookService


def _service(request: web.Request) -> WebhookService:
    service = fleet_of(request).webhooks
    if service is None:
        raise Problem(503, "webhooks are not available on this service")
    return service


def _out(record: WebhookRecord) -> WebhookOut:
    return WebhookOut.model_validate(record.to_json())


async def list_webhooks(request: web.Request) -> web.Response:
    records = await _service(request).list_webhooks()
    return json_response(WebhookList(items=[_out(r) for r in records]))


async def create_webhook(request: web.Request) -> web.Response:
    body = await read_body(request, WebhookIn)
    values = body.model_dump(exclude_unset=True)
    if body.filter is not None:
        values["filter"] = body.filter.model_dump(exclude_none=True)
    record = await _service(request).create(values, identity_of(request).name)
    return json_response(_out(record), 201, {"Location": f"/v1/webhooks/{record.id}"})


async def get_webhook(request: web.Request) -> web.Response:
    record = await _service(request).get(request.match_info["webhook_id"])
    return json_response(_out(record))


async def patch_webhook(request: web.Request) -> web.Response:
    body = await read_body(request, WebhookPatchIn)
    values = body.model_dump(exclude_unset=True)
    if "filter" in values:
        values["filter"] = {} if body.filter is None else body.filter.model_dump(exclude_none=True)
    record = await _service(request).update(request.match_info["webhook_id"], values)
    return json_response(_out(record))


async def delete_webhook(request: web.Request) -> web.Response:
    record = await _service(request).delete(request.match_info["webhook_id"])
    return json_response(_out(record))


async def list_deliveries(request: web.Request) -> web.Response:
    q = read_query(request, DeliveriesQuery)
    records = await _service(request).deliveries(
        request.match_info["webhook_id"], q.limit + 1, q.before, q.status
    )
    more = len(records) > q.limit
    items = [DeliveryOut.model_validate(r.to_json()) for r in records[: q.limit]]
    cursor = str(items[-1].id) if more and items else None
    return json_response(DeliveryList(items=items, next_cursor=cursor))


async def test_webhook(request: web.Request) -> web.Response:
    record = await _service(request).test(
        request.match_info["webhook_id"], identity_of(request).name
    )
    return json_response(DeliveryOut.model_validate(record.to_json()))
