"""Frozen records the policy store returns (rows never leave `fleet.policies.store`), with the
JSON the API shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from fleet.policies.model import PolicySpec
from jobs.types import JSONMapping, JSONObject


class FireStatus(StrEnum):
    FIRING = "firing"  # the slot is claimed; its operation is being created
    FIRED = "fired"  # the operation exists (operation_id)
    SKIPPED = "skipped"  # evaluated and deliberately not run (reason)
    FAILED = "failed"  # could not be evaluated in time (reason: the error)
    REFUSED = "refused"  # admission refused the operation it would create (reason: why)


class Trigger(StrEnum):
    SCHEDULE = "schedule"  # the schedule (on time or caught up after downtime)
    MANUAL = "manual"  # `run now` (API, CLI)


class Source(StrEnum):
    FILE = "file"  # config/policies*.toml: the files are the truth, the API cannot edit them
    API = "api"


@dataclass(frozen=True)
class PolicyRecord:
    id: str
    source: Source
    spec: PolicySpec
    version: int
    active_since: datetime  # slots before this are not the policy's (created, re-enabled, re-timed)
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str

    def to_json(self) -> JSONObject:
        return {
            "id": self.id,
            "source": self.source.value,
            "version": self.version,
            "active_since": _iso(self.active_since),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "created_by": self.created_by,
            "updated_by": self.updated_by,
            "spec": self.spec.to_json(),
        }


@dataclass(frozen=True)
class FireRecord:
    """One slot of one policy: fired, skipped (and why), or failed. Unique per (policy, slot)."""

    id: int
    policy_id: str
    scheduled_at: datetime
    trigger: Trigger
    status: FireStatus
    reason: str | None
    operation_id: str | None
    idempotency_key: str
    dry_run: bool
    targets: int
    request: JSONMapping | None  # the operation it creates (written before it is created)
    details: JSONMapping  # skipped servers by reason, samples, restored fires...
    worker: str
    by: str
    claimed_at: datetime
    finished_at: datetime | None
    harvested_at: datetime | None
    consumed_by: int | None
    # What came of the fire, read from its operation when it has one (`PolicyService` fills it):
    # firing, running, succeeded, completed_with_failures, failed, stopped, cancelled, refused,
    # nothing_matched, skipped; with the reason where there is one.
    outcome: str | None = None
    outcome_reason: str | None = None

    def to_json(self) -> JSONObject:
        return {
            "outcome": self.outcome or self.status.value,
            "outcome_reason": self.outcome_reason if self.outcome else self.reason,
            "id": self.id,
            "policy_id": self.policy_id,
            "scheduled_at": _iso(self.scheduled_at),
            "trigger": self.trigger.value,
            "status": self.status.value,
            "reason": self.reason,
            "operation_id": self.operation_id,
            "idempotency_key": self.idempotency_key,
            "dry_run": self.dry_run,
            "targets": self.targets,
            "details": dict(self.details),
            "worker": self.worker,
            "by": self.by,
            "claimed_at": _iso(self.claimed_at),
            "finished_at": None if self.finished_at is None else _iso(self.finished_at),
            "restored_by_fire": self.consumed_by,
        }


@dataclass(frozen=True)
class HarvestedServer:
    """A server a stop fire's operation really stopped, as it looked once the operation ended."""

    endpoint: str
    server_id: str
    status: str
    updated: str | None  # the cloud's change stamp then: a different one later means "touched"


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
