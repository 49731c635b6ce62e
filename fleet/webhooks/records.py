"""Frozen records the webhook store returns, with the JSON the API shows (never the secret)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import RowMapping

from fleet.webhooks.events import Event, iso
from jobs.types import JSONMapping, JSONObject


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


@dataclass(frozen=True)
class WebhookRecord:
    id: str
    url: str
    events: tuple[str, ...]
    filter: Mapping[str, tuple[str, ...]]
    secret_ref: str  # where the secret is; shown as "set", never returned
    description: str
    enabled: bool
    created_at: datetime
    updated_at: datetime
    created_by: str

    def to_json(self) -> JSONObject:
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "filter": {k: list(v) for k, v in self.filter.items()},
            "secret": "set",
            "description": self.description,
            "enabled": self.enabled,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class AttemptRecord:
    attempt: int
    at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None

    def to_json(self) -> JSONObject:
        return {
            "attempt": self.attempt,
            "at": iso(self.at),
            "status_code": self.status_code,
            "latency_ms": self.latency_ms,
            "error": self.error,
        }


@dataclass(frozen=True)
class DeliveryRecord:
    """One event for one subscription: the outbox row, which is also its delivery log."""

    id: int
    subscription_id: str
    event: Event
    status: str  # pending, delivered, failed (gave up)
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    status_code: int | None
    latency_ms: int | None
    error: str | None
    created_at: datetime
    log: tuple[AttemptRecord, ...] = ()

    def to_json(self) -> JSONObject:
        return {
            "id": self.id,
            "subscription_id": self.subscription_id,
            "event_id": self.event.id,
            "type": self.event.type,
            "subject": self.event.subject,
            "time": iso(self.event.time),
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": None if self.status != "pending" else iso(self.next_attempt_at),
            "last_attempt_at": _iso(self.last_attempt_at),
            "delivered_at": _iso(self.delivered_at),
            "status_code": self.status_code,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "data": dict(self.event.data),
            "log": [a.to_json() for a in self.log],
        }


def event_of(m: RowMapping) -> Event:
    data = m["data"]
    return Event(
        id=str(m["event_id"]),
        type=str(m["type"]),
        source=str(m["source"]),
        subject=str(m["subject"]),
        time=m["time"],
        data=data if isinstance(data, dict) else {},
    )


def as_mapping(value: object) -> JSONMapping:
    return value if isinstance(value, dict) else {}
