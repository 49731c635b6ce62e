"""Fault injection: what a real cloud does on a bad day.

Kinds (each rule matches rate keys with a glob in `match`, e.g. `huawei-ecs:*`, and applies to the
next `count` matching calls; `count = 0` means every matching call until cleared):
- `error_burst`: answer with `status` (default 503) in the dialect's error format.
- `latency`: wait `ms` (+ up to `jitter_ms`) milliseconds before handling.
- `timeout`: hold the request for `seconds` (default 30) without answering, then drop it.
- `drop`: perform the call, then close the connection before answering ("accept then drop").
- `lost_answer`: perform the call, then answer `status` (default 504 here) in the dialect's error
  format, as a gateway that timed out (or a backend that failed after acting) in front of a cloud
  that went on.
- `throttle`: answer with the dialect's throttling error although the budget has room.
- `job_fail`: the next action on each of `server_ids` fails when it settles (job sub-job FAIL with
  `error_code`/`reason`; Nova servers return to their previous status with a `fault`).
- `create_fail`: the next `count` servers created by calls matching `match` (e.g.
  `huawei-ecs:create`, `huawei-bms:create`, `openstack:create`, `huawei-nova:create`) are
  accepted but end in ERROR when their build settles, with a `fault` carrying `reason`; on Huawei
  their sub-jobs FAIL with `error_code` (default here `Ecs.0204` "Failed to create the ECS.") and
  the job FAILs. The server stays listed in ERROR, as a failed build does on a real cloud.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

KINDS = (
    "error_burst",
    "latency",
    "timeout",
    "drop",
    "lost_answer",
    "throttle",
    "job_fail",
    "create_fail",
)


@dataclass
class FaultRule:
    kind: str
    match: str = "*"
    count: int = 1
    status: int = 503
    ms: float = 0.0
    jitter_ms: float = 0.0
    seconds: float = 30.0
    server_ids: list[str] = field(default_factory=list)
    error_code: str = "Ecs.0000"
    reason: str = "Simulated failure."
    fired: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "match": self.match,
            "count": self.count,
            "status": self.status,
            "ms": self.ms,
            "jitter_ms": self.jitter_ms,
            "seconds": self.seconds,
            "server_ids": list(self.server_ids),
            "error_code": self.error_code,
            "reason": self.reason,
            "fired": self.fired,
        }


def parse_rule(data: dict[str, object]) -> FaultRule:
    """Validate one fault description; raises ValueError naming the field."""
    kind = data.get("kind")
    if kind not in KINDS:
        raise ValueError(f"kind: must be one of {list(KINDS)}")
    allowed = set(FaultRule.__dataclass_fields__) - {"fired"}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    rule = _with_defaults(FaultRule(kind=str(kind)))
    for name in ("match", "error_code", "reason"):
        if name in data:
            setattr(rule, name, str(data[name]))
    for name in ("count", "status"):
        if name in data:
            setattr(rule, name, _non_negative(name, data[name], integer=True))
    for name in ("ms", "jitter_ms", "seconds"):
        if name in data:
            setattr(rule, name, float(_non_negative(name, data[name], integer=False)))
    if "server_ids" in data:
        ids = data["server_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError("server_ids: must be a list of strings")
        rule.server_ids = list(ids)
    return rule


def _with_defaults(rule: FaultRule) -> FaultRule:
    """A rule with its kind's own defaults (a lost answer is a 504; a failed build Ecs.0204)."""
    if rule.kind == "lost_answer":
        rule.status = 504
    if rule.kind == "create_fail":
        rule.error_code, rule.reason = "Ecs.0204", "Failed to create the ECS."
    return rule


def _non_negative(name: str, value: object, *, integer: bool) -> int | float:
    kinds = (int,) if integer else (int, float)
    if not isinstance(value, kinds) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name}: must be a non-negative {'integer' if integer else 'number'}")
    return value


@dataclass
class FaultPlan:
    rules: list[FaultRule] = field(default_factory=list)

    def add(self, rule: FaultRule) -> None:
        self.rules.append(rule)

    def clear(self) -> None:
        self.rules.clear()

    def take(self, kind: str, rate_key: str) -> FaultRule | None:
        """The first live rule of `kind` matching `rate_key`, counted as fired."""
        for rule in self.rules:
            if rule.kind != kind or not fnmatch.fnmatchcase(rate_key, rule.match):
                continue
            if rule.count and rule.fired >= rule.count:
                continue
            rule.fired += 1
            return rule
        return None
