"""Preview: the next fire times (which are skipped, and why) and the targets a fire would hit now.

The fire times come from the same `Schedule` the firing uses, the targets from the same
evaluation (listing through the drivers, tag rules, restore records), so a preview cannot disagree
with the fire that follows it. Servers the planner will still skip (excluded, already in the target
state) are marked with the planner's own reason. For mark and clean-up policies each server says
where its mark is kept (`mark_kept`): `"tag"`, or `"fleet"` on a dialect without a tag API.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from fleet.policies.model import Policy
from fleet.policies.records import PolicyRecord
from fleet.policies.targets import Considered, Evaluation
from fleet.policies.views import slot_json
from jobs.types import JSONObject, JSONValue


@dataclass(frozen=True)
class SlotPreview:
    slot_json: JSONObject
    fires: bool
    reason: str | None  # why it will be skipped

    def to_json(self) -> JSONObject:
        return {**self.slot_json, "fires": self.fires, "skipped_reason": self.reason}


@dataclass(frozen=True)
class Preview:
    policy_id: str
    now: datetime
    dry_run_only: bool
    slots: tuple[SlotPreview, ...]
    evaluation: Evaluation
    servers: int  # how many servers to list (all are counted)

    def _server(self, c: Considered) -> JSONObject:
        return {
            "endpoint": c.endpoint,
            "server_id": c.server_id,
            "name": c.name,
            "status": c.status,
            "act": c.act,
            "reason": c.reason or None,
            "planner_skip": c.planner_skip,
            "mark_kept": c.mark_kept,
        }

    def to_json(self) -> JSONObject:
        shown = sorted(self.evaluation.considered, key=lambda c: (not c.act, c.endpoint, c.name))
        planner = Counter(c.planner_skip for c in self.evaluation.acting if c.planner_skip)
        servers: list[JSONValue] = [self._server(c) for c in shown[: self.servers]]
        targets = self.evaluation.details()
        targets.pop("skipped", None)
        targets.update(
            {
                "planner_skips": dict(sorted(planner.items())),
                "params": self.evaluation.params,
                "servers": servers,
                "truncated": len(shown) > self.servers,
            }
        )
        return {
            "policy_id": self.policy_id,
            "now": self.now.isoformat().replace("+00:00", "Z"),
            "dry_run_only": self.dry_run_only,
            "slots": [s.to_json() for s in self.slots],
            "targets": targets,
        }


def build_preview(
    record: PolicyRecord,
    policy: Policy,
    now: datetime,
    n: int,
    evaluation: Evaluation,
    servers: int,
) -> Preview:
    slots = []
    for slot in policy.schedule.upcoming(now, n):
        reason = None
        if not policy.spec.enabled:
            reason = "policy disabled"
        elif slot.local_date in policy.skip:
            reason = f"skip day {slot.local_date.isoformat()} ({policy.skip[slot.local_date]})"
        slots.append(SlotPreview(slot_json(slot, policy.spec.timezone), reason is None, reason))
    return Preview(
        record.id, now, policy.spec.dry_run_only, tuple(slots), evaluation, max(0, servers)
    )
