"""The REST contract of `/v1/webhooks` (see docs/api.md, "Webhooks").

A body is checked here for its shape (strict, unknown keys refused), then by
`fleet.webhooks.service` for its meaning (event types, filter names, the URL, the secret
reference), which names the field the same way. The secret is write-only: answers say
`"secret": "set"`, never the reference's value nor the secret.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue

from fleet.api.schemas import _In, _Out, _Query

Names = list[str]
REF_HELP = (
    "where the signing secret is, never the secret: env:NAME or file:PATH; its value is "
    "whsec_ and base64 of 24-64 random bytes (the Standard Webhooks convention)"
)


class WebhookFilterIn(_In):
    endpoint: Names | None = Field(default=None, description="endpoint names")
    policy: Names | None = Field(default=None, description="policy names")
    state: Names | None = Field(default=None, description="outcomes or operation states")


class WebhookIn(_In):
    url: str = Field(min_length=1, max_length=2048, description="http:// or https://")
    events: Names = Field(min_length=1, description='event types, or ["*"]')
    filter: WebhookFilterIn | None = None
    secret: str = Field(min_length=1, max_length=1024, description=REF_HELP)
    description: str = Field(default="", max_length=500)
    enabled: bool = True


class WebhookPatchIn(_In):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    events: Names | None = Field(default=None, min_length=1)
    filter: WebhookFilterIn | None = None
    secret: str | None = Field(default=None, min_length=1, max_length=1024, description=REF_HELP)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class DeliveriesQuery(_Query):
    limit: int = Field(default=50, ge=1, le=500)
    before: int | None = Field(default=None, ge=1, description="a delivery id from the last page")
    status: Literal["pending", "delivered", "failed"] | None = None


class WebhookOut(_Out):
    id: str
    url: str
    events: Names
    filter: dict[str, Names]
    secret: Literal["set"]
    description: str
    enabled: bool
    created_at: str
    updated_at: str
    created_by: str


class WebhookList(_Out):
    items: list[WebhookOut]


class AttemptOut(_Out):
    attempt: int
    at: str
    status_code: int | None
    latency_ms: int
    error: str | None


class DeliveryOut(_Out):
    id: int
    subscription_id: str
    event_id: str
    type: str
    subject: str
    time: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: str | None
    last_attempt_at: str | None
    delivered_at: str | None
    status_code: int | None
    latency_ms: int | None
    error: str | None
    data: dict[str, JsonValue]
    log: list[AttemptOut]


class DeliveryList(_Out):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(description="`before` for the next page")
