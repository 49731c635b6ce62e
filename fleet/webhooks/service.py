"""What the API and the CLI do with webhooks: check a subscription (FieldError naming the field),
store it, read the delivery log, and send a test event at once.

The secret is write-only: a subscription gives a REFERENCE (`env:NAME` or `file:PATH`), which is
checked to lead to a valid `whsec_` secret when it is given and read again at every send; the
secret itself is never stored, logged or returned (the API shows `"secret": "set"`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping, Sequence
from urllib.parse import urlsplit

from fleet.settings import WebhooksSpec
from fleet.webhooks.events import ALL, FILTER_KEYS, SUBSCRIBABLE, Event, EventType
from fleet.webhooks.outbox import new_event_id
from fleet.webhooks.records import DeliveryRecord, WebhookRecord
from fleet.webhooks.relay import Sender
from fleet.webhooks.signing import SecretError, check_ref, resolve
from fleet.webhooks.store import WebhookStore
from jobs.clock import Clock
from jobs.errors import FieldError, NotFound

KEYS = ("url", "events", "filter", "secret", "description", "enabled")
DELIVERY_STATES = ("pending", "delivered", "failed")


class WebhookNotFound(NotFound):
    """No such subscription."""


def _host_allowed(host: str, allowed: Sequence[str]) -> bool:
    for entry in allowed:
        entry = entry.lower()
        if host == entry or (
            entry.startswith("*.") and (host.endswith(entry[1:]) or host == entry[2:])
        ):
            return True
    return False


def check_url(url: object, allowed: Sequence[str]) -> str:
    if not isinstance(url, str) or not url:
        raise FieldError("url", "a URL, http:// or https://")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FieldError("url", "an absolute http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise FieldError("url", "no user or password in the URL (the signature authenticates)")
    if len(url) > 2048:
        raise FieldError("url", "at most 2048 characters")
    host = parts.hostname.lower()
    if allowed and not _host_allowed(host, allowed):
        raise FieldError("url", f"host {host!r} is not in [webhooks] allowed_hosts")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return url
    if address.is_link_local and not _host_allowed(host, allowed):
        raise FieldError("url", "a link-local address (cloud metadata) is refused")
    return url


def check_events(events: object) -> list[str]:
    if not isinstance(events, list) or not events:
        raise FieldError(
            "events", f'a list of event types, or ["*"]; types: {", ".join(SUBSCRIBABLE)}'
        )
    for i, name in enumerate(events):
        if name != ALL and name not in SUBSCRIBABLE:
            raise FieldError(
                f"events[{i}]",
                f"unknown event type {name!r}; one of {', '.join(SUBSCRIBABLE)} or *",
            )
    return list(dict.fromkeys(str(e) for e in events))


def check_filter(filter_: object, endpoints: Collection[str]) -> dict[str, list[str]]:
    if filter_ is None:
        return {}
    if not isinstance(filter_, dict):
        raise FieldError("filter", f"an object with some of: {', '.join(FILTER_KEYS)}")
    out: dict[str, list[str]] = {}
    for key, values in filter_.items():
        if key not in FILTER_KEYS:
            raise FieldError(f"filter.{key}", f"unknown filter; one of {', '.join(FILTER_KEYS)}")
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise FieldError(f"filter.{key}", "a list of names")
        if key == "endpoint":
            unknown = [v for v in values if v not in endpoints]
            if unknown:
                raise FieldError(f"filter.{key}", f"unknown endpoint {unknown[0]!r}")
        if values:
            out[key] = list(values)
    return out


def check_secret(ref: object, environ: Mapping[str, str] | None) -> str:
    if not isinstance(ref, str) or not ref:
        raise FieldError("secret", "required: env:NAME or file:PATH (where the whsec_ secret is)")
    try:
        check_ref(ref)
        resolve(ref, environ)
    except SecretError as exc:
        raise FieldError("secret", str(exc)) from None
    return ref


class WebhookService:
    def __init__(
        self,
        store: WebhookStore,
        clock: Clock,
        spec: WebhooksSpec,
        endpoints: Collection[str],
        sender: Sender | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.spec = spec
        self.endpoints = endpoints
        self.sender = sender
        self.environ = environ

    def _values(self, body: Mapping[str, object], partial: bool) -> dict[str, object]:
        unknown = [k for k in body if k not in KEYS]
        if unknown:
            raise FieldError(unknown[0], f"unknown key; one of {', '.join(KEYS)}")
        for key in ("url", "events", "secret"):
            if not partial and key not in body:
                raise FieldError(key, "required")
        values: dict[str, object] = {}
        if "url" in body:
            values["url"] = check_url(body["url"], self.spec.allowed_hosts)
        if "events" in body:
            values["events"] = check_events(body["events"])
        if "filter" in body or not partial:
            values["filter"] = check_filter(body.get("filter"), self.endpoints)
        if "secret" in body:
            values["secret_ref"] = check_secret(body["secret"], self.environ)
        if "description" in body:
            text = body["description"]
            if not isinstance(text, str) or len(text) > 500:
                raise FieldError("description", "text, at most 500 characters")
            values["description"] = text
        if "enabled" in body:
            if not isinstance(body["enabled"], bool):
                raise FieldError("enabled", "true or false")
            values["enabled"] = body["enabled"]
        return values

    async def create(self, body: Mapping[str, object], by: str) -> WebhookRecord:
        return await self.store.create(self._values(body, False), by, self.clock.now())

    async def list_webhooks(self) -> list[WebhookRecord]:
        return await self.store.list_webhooks()

    async def get(self, webhook_id: str) -> WebhookRecord:
        found = await self.store.get(webhook_id)
        if found is None:
            raise WebhookNotFound(f"webhook {webhook_id} not found")
        return found

    async def update(self, webhook_id: str, body: Mapping[str, object]) -> WebhookRecord:
        await self.get(webhook_id)
        values = self._values(body, True)
        found = await self.store.update(webhook_id, values, self.clock.now())
        if found is None:
            raise WebhookNotFound(f"webhook {webhook_id} not found")
        return found

    async def delete(self, webhook_id: str) -> WebhookRecord:
        found = await self.get(webhook_id)
        await self.store.delete(webhook_id)
        return found

    async def deliveries(
        self, webhook_id: str, limit: int, before: int | None, status: str | None
    ) -> list[DeliveryRecord]:
        await self.get(webhook_id)
        if status is not None and status not in DELIVERY_STATES:
            raise FieldError("status", f"one of {', '.join(DELIVERY_STATES)}")
        return await self.store.deliveries(webhook_id, limit, before, status)

    async def test(self, webhook_id: str, by: str) -> DeliveryRecord:
        """Send a `fleet.webhook.test` event now, signed like any other; logged, not retried."""
        sub = await self.get(webhook_id)
        if self.sender is None:
            raise FieldError("webhooks", "this process does not send webhooks")
        now = self.clock.now()
        event = Event(
            new_event_id(), EventType.TEST.value, "/v1/webhooks", sub.id, now,
            {"webhook_id": sub.id, "requested_by": by, "message": "a test event from fleet"},
        )  # fmt: skip
        result = await self.sender.send(sub.url, sub.secret_ref, event)
        return await self.store.record_test(sub.id, event, result, now)


def parse_before(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 18:
        raise FieldError("before", "a delivery id (from a previous page)")
    return int(value)
