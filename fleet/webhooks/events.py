"""What fleet tells receivers: the event types, the subscription filter, and the CloudEvent.

Pure values and functions (no database, no HTTP). A subscription's `events` is a list of types or
`["*"]`; its `filter` narrows further by endpoint, policy and outcome (the operation's or the
fire's state). An event carries the values the filter looks at (`Scope`); a filter key the event
has no value for does not match (an endpoint filter never lets through an event of no endpoint).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from jobs.types import JSONMapping, JSONObject, JSONValue


class EventType(StrEnum):
    OPERATION_CREATED = "fleet.operation.created"
    OPERATION_STARTED = "fleet.operation.started"
    OPERATION_PAUSED = "fleet.operation.paused"
    OPERATION_FINISHED = "fleet.operation.finished"
    BUDGET_EXHAUSTED = "fleet.operation.budget_exhausted"
    POLICY_FIRED = "fleet.policy.fired"
    SUBJOBS_FAILED = "fleet.subjobs.failed"
    DRIFT_DETECTED = "fleet.drift.detected"
    TEST = "fleet.webhook.test"  # only the test-send endpoint sends it


SUBSCRIBABLE = tuple(t.value for t in EventType if t is not EventType.TEST)
ALL = "*"

FILTER_KEYS = ("endpoint", "policy", "state")
"""`filter.endpoint`: endpoint names; `filter.policy`: policy names; `filter.state`: outcomes
(`fleet.operation.finished`: succeeded, completed_with_failures, failed, cancelled, refused;
`fleet.policy.fired`: fired, refused, skipped, misfired, nothing_to_do, failed; other events
carry the operation's state: pending, running, paused, stopping)."""


@dataclass(frozen=True)
class Scope:
    """What a subscription's filter reads from an event."""

    endpoints: tuple[str, ...] = ()
    policy: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class Subscription:
    id: str
    url: str
    events: tuple[str, ...]
    filter: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def wants(self, type_: str, scope: Scope) -> bool:
        if ALL not in self.events and type_ not in self.events:
            return False
        if type_ == EventType.TEST.value:
            return False
        return matches(self.filter, scope)


def matches(filter_: Mapping[str, Sequence[str]], scope: Scope) -> bool:
    endpoints = filter_.get("endpoint")
    if endpoints and not set(endpoints) & set(scope.endpoints):
        return False
    policies = filter_.get("policy")
    if policies and scope.policy not in policies:
        return False
    states = filter_.get("state")
    return not (states and scope.state not in states)


@dataclass(frozen=True)
class Event:
    """One CloudEvent as it is stored in the outbox and sent."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    data: JSONMapping

    def to_json(self) -> JSONObject:
        return {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": iso(self.time),
            "subject": self.subject,
            "datacontenttype": "application/json",
            "data": dict(self.data),
        }

    def body(self) -> bytes:
        """The exact bytes sent and signed (compact, keys in a stable order)."""
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True).encode()


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def jsonable(value: object) -> JSONValue:
    """`value` as JSON (datetimes as ISO text): what the outbox's JSON column can hold."""
    text = json.dumps(value, default=lambda v: iso(v) if isinstance(v, datetime) else str(v))
    loaded: JSONValue = json.loads(text)
    return loaded
