"""What the API returns for a policy and for a run (frozen values with their JSON)."""

from __future__ import annotations

from dataclasses import dataclass

from fleet.policies.cron import Slot
from fleet.policies.records import FireRecord, PolicyRecord
from jobs.types import JSONObject


def slot_json(slot: Slot, tz_name: str) -> JSONObject:
    from zoneinfo import ZoneInfo

    return {
        "at": slot.at.isoformat().replace("+00:00", "Z"),
        "local": slot.at.astimezone(ZoneInfo(tz_name)).isoformat(),
        "note": slot.note,
    }


@dataclass(frozen=True)
class PolicyView:
    record: PolicyRecord
    next_fire: Slot | None  # None: disabled (or a cron with no future slot)
    last_fire: FireRecord | None

    @property
    def id(self) -> str:
        return self.record.id

    def to_json(self) -> JSONObject:
        out = self.record.to_json()
        tz = self.record.spec.timezone
        out["next_fire"] = None if self.next_fire is None else slot_json(self.next_fire, tz)
        out["last_fire"] = None if self.last_fire is None else self.last_fire.to_json()
        return out


@dataclass(frozen=True)
class RunResult:
    """`run now`: the slot's fire, and whether this call fired it (False: it had been already)."""

    fire: FireRecord
    created: bool

    def to_json(self) -> JSONObject:
        return {"created": self.created, "fire": self.fire.to_json()}
