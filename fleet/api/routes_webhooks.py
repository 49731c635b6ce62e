"""The `/v1/webhooks` rows of the routes table (`fleet.api.routes` includes them)."""

from __future__ import annotations

from fleet.api import webhooks
from fleet.api.route import Reply, Route
from fleet.api.schemas_webhooks import (
    DeliveriesQuery,
    DeliveryList,
    DeliveryOut,
    WebhookIn,
    WebhookList,
    WebhookOut,
    WebhookPatchIn,
)
from fleet.tokens import Role

A = Role.ADMIN
HOOK = "/v1/webhooks/{webhook_id}"
MISSING = Reply(404, "no such subscription")

WEBHOOK_ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/v1/webhooks",
        webhooks.list_webhooks,
        A,
        "list_webhooks",
        "Webhook subscriptions (their secrets never shown)",
        "webhooks",
        (Reply(200, "every subscription", WebhookList),),
    ),
    Route(
        "POST",
        "/v1/webhooks",
        webhooks.create_webhook,
        A,
        "create_webhook",
        "Subscribe a URL to events (secret: env:NAME or file:PATH, never the secret itself)",
        "webhooks",
        (Reply(201, "the new subscription", WebhookOut, headers=("Location",)),),
        body=WebhookIn,
    ),
    Route(
        "GET",
        HOOK,
        webhooks.get_webhook,
        A,
        "get_webhook",
        "One subscription",
        "webhooks",
        (Reply(200, "the subscription", WebhookOut), MISSING),
    ),
    Route(
        "PATCH",
        HOOK,
        webhooks.patch_webhook,
        A,
        "patch_webhook",
        "Change some keys of a subscription (url, events, filter, secret, description, enabled)",
        "webhooks",
        (Reply(200, "the subscription after the change", WebhookOut), MISSING),
        body=WebhookPatchIn,
    ),
    Route(
        "DELETE",
        HOOK,
        webhooks.delete_webhook,
        A,
        "delete_webhook",
        "Delete a subscription with its delivery log (undelivered events are dropped)",
        "webhooks",
        (Reply(200, "the deleted subscription", WebhookOut), MISSING),
    ),
    Route(
        "GET",
        f"{HOOK}/deliveries",
        webhooks.list_deliveries,
        A,
        "list_webhook_deliveries",
        "The delivery log: each event with its status, attempts, response code and latency",
        "webhooks",
        (Reply(200, "a page of deliveries, newest first", DeliveryList), MISSING),
        query=DeliveriesQuery,
    ),
    Route(
        "POST",
        f"{HOOK}/test",
        webhooks.test_webhook,
        A,
        "test_webhook",
        "Send a signed fleet.webhook.test event now and answer what the receiver said",
        "webhooks",
        (Reply(200, "the test delivery (delivered or failed)", DeliveryOut), MISSING),
    ),
)
