"""Approvals: when an operation waits for a second person before anything is sent.

The product decides which rules apply to a request (at admission) and hands them to the engine
with the operation (`NewOperation.approval`). Planning resolves the targets as usual (a read of
the clouds, nothing sent), then evaluates the rules against the plan: when one holds, the
operation is `pending_approval` and its sub-jobs are invisible to dispatch until another caller
approves it. A rejection, or no decision within the window, ends it (`rejected`, `expired`) with
every sub-job cancelled: nothing was sent.

A rule holds when the plan acts beyond its blast radius (`beyond`), counting only the servers of
its `scopes` (endpoints) when it names some; a rule without `beyond` holds as soon as one server
(of its scopes) is acted on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from jobs.strategy import BlastRadius, blast_radius_refusal
from jobs.types import JSONObject, JSONValue


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True)
class ApprovalRule:
    reason: str  # shown to the approver, e.g. "endpoint ecs-prod requires approval"
    beyond: BlastRadius | None = None  # None: any server acted on
    scopes: tuple[str, ...] = ()  # count only these scopes' servers (empty: every scope)

    def holds(self, acting_by_scope: Mapping[str, int], fleet_by_scope: Mapping[str, int]) -> bool:
        counted = {
            scope: n
            for scope, n in acting_by_scope.items()
            if n and (not self.scopes or scope in self.scopes)
        }
        acting = sum(counted.values())
        if not acting:
            return False
        if self.beyond is None:
            return True
        return blast_radius_refusal(self.beyond, acting, counted, fleet_by_scope) is not None

    def to_json(self) -> JSONObject:
        return {
            "reason": self.reason,
            "beyond": None if self.beyond is None else self.beyond.to_json(),
            "scopes": list(self.scopes),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> ApprovalRule:
        beyond = raw.get("beyond")
        scopes = raw.get("scopes")
        return cls(
            reason=str(raw.get("reason") or ""),
            beyond=BlastRadius.from_json(beyond) if isinstance(beyond, Mapping) else None,
            scopes=tuple(str(s) for s in scopes) if isinstance(scopes, list) else (),
        )


@dataclass(frozen=True)
class ApprovalRules:
    """The rules an operation is held to, and how long a decision may take once it waits."""

    rules: tuple[ApprovalRule, ...]
    window_seconds: float

    def needed(
        self, acting_by_scope: Mapping[str, int], fleet_by_scope: Mapping[str, int]
    ) -> str | None:
        """Why the plan needs approval (every rule that holds), or None."""
        reasons = [r.reason for r in self.rules if r.holds(acting_by_scope, fleet_by_scope)]
        return "; ".join(reasons) or None

    def to_json(self) -> JSONObject:
        rules: list[JSONValue] = [r.to_json() for r in self.rules]
        return {"rules": rules, "window_seconds": self.window_seconds}

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> ApprovalRules:
        rules = raw.get("rules")
        window = raw.get("window_seconds")
        return cls(
            rules=tuple(
                ApprovalRule.from_json(r) for r in (rules if isinstance(rules, list) else ())
            ),
            window_seconds=float(window) if isinstance(window, int | float) else 0.0,
        )


@dataclass(frozen=True)
class Approval:
    """An operation's approval: why it was needed, until when, and the decision (None: pending)."""

    reason: str
    expires_at: datetime
    decision: Decision | None = None
    decided_by: str | None = None  # None for an expiry
    decided_at: datetime | None = None
    note: str | None = None

    @property
    def pending(self) -> bool:
        return self.decision is None
