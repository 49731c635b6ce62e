"""Per-server tag rules, evaluated when a fire (or a preview) builds its target list.

Pure functions of (policy, server, day), where `day` is the slot's calendar day in the policy's
time zone, so a rule reads the same in a preview, a fire and a test:

- opt-out: a server carrying the policy's `opt_out_tag` (`key=value`, or `key` for any value) is
  left alone by every mode.
- snooze: `fleet-snooze-until=YYYY-MM-DD` is honoured up to and including that day, not after. An
  unreadable date skips the server too (someone meant to snooze it; the reason says why).
- clean-up: due when the expiry tag's day is in the past, or when the marked-for-op tag names this
  policy's action and its day has come (`fleet-op=stop.2026-12-01` is due on 1 December).
- mark: a server already carrying the marked-for-op tag keeps its mark (it is not re-dated).

The mark's value is `OP.YYYY-MM-DD` (`delete.2026-12-20`): letters, digits, `_`, `-` and `.` only,
at most 25 characters, which every dialect's tag rules accept (Huawei ECS v1 tag values allow
A-Z a-z 0-9 `_` `-` `.` and 43 characters; BMS and Nova 1D tags `key=value` up to 80 characters
without `,` or `/`). The older `OP@YYYY-MM-DD` is still read, so servers marked before keep
their day.

The planner's exclusion tag (`fleet-exclude=true`) is applied later, by the planner itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta

from fleet.domain import ServerRef, tag_day
from fleet.policies.model import CleanupSpec, Policy

NOT_DUE = "not due"
_OPERATION_ID = re.compile(r"[0-9a-f]{32}")  # an operation's id, as a create tags its servers


@dataclass(frozen=True)
class Verdict:
    act: bool
    reason: str  # why it is skipped, or (for clean-up) why it is due; "" for a plain target


ACT = Verdict(True, "")


MARK_SEPARATOR = "."  # OP.YYYY-MM-DD; `@` (the older form) is not a valid ECS tag value
OLD_SEPARATOR = "@"


def format_marker(op: str, day: date) -> str:
    """("delete", 2026-12-20) -> `delete.2026-12-20`."""
    return f"{op}{MARK_SEPARATOR}{day.isoformat()}"


def parse_marker(text: str) -> tuple[str, date] | None:
    """`stop.2026-12-01` (or the older `stop@2026-12-01`) -> ("stop", date); None when it is
    neither shape."""
    sep = OLD_SEPARATOR if OLD_SEPARATOR in text else MARK_SEPARATOR
    op, found, when = text.strip().rpartition(sep)
    day = tag_day(when) if found else None
    return None if day is None or not op.strip() else (op.strip(), day)


def opt_out_reason(policy: Policy, server: ServerRef) -> str | None:
    if policy.opt_out is None:
        return None
    key, value = policy.opt_out
    if key in server.tags and (not value or server.tags[key] == value):
        return f"opted out ({key}={server.tags[key]})" if server.tags[key] else f"opted out ({key})"
    return None


def snooze_reason(policy: Policy, server: ServerRef, day: date) -> str | None:
    key = policy.spec.snooze_tag
    if not key or key not in server.tags:
        return None
    until = tag_day(server.tags[key])
    if until is None:
        return f"snooze tag unreadable: {key}={server.tags[key]!r} (expected YYYY-MM-DD)"
    return f"snoozed until {until.isoformat()}" if day <= until else None


def cleanup_verdict(policy: Policy, server: ServerRef, day: date) -> Verdict:
    """Due for this clean-up policy's action, or why not. The op tag of a server fleet created
    holds the creating operation's id (D41), not a mark: it is no reason to skip."""
    spec = policy.spec.cleanup or CleanupSpec()
    if spec.expiry_tag and spec.expiry_tag in server.tags:
        expires = tag_day(server.tags[spec.expiry_tag])
        if expires is None:
            return Verdict(False, f"expiry tag unreadable: {server.tags[spec.expiry_tag]!r}")
        if expires < day:
            return Verdict(True, f"expired {expires.isoformat()}")
    if spec.op_tag and spec.op_tag in server.tags:
        value = server.tags[spec.op_tag]
        marker = parse_marker(value)
        if marker is None and not _OPERATION_ID.fullmatch(value):
            return Verdict(False, f"op tag unreadable: {value!r}")
        if marker is not None and marker[0] == policy.action and marker[1] <= day:
            return Verdict(True, f"marked {format_marker(*marker)}")
    return Verdict(False, NOT_DUE)


def mark_value(policy: Policy, day: date) -> tuple[str, str]:
    """The tag a mark policy adds for a slot on `day`."""
    assert policy.spec.mark is not None
    mark = policy.spec.mark
    return mark.tag, format_marker(mark.op, day + timedelta(days=mark.days))


def verdict(
    policy: Policy, server: ServerRef, day: date, fleet_marks: Mapping[str, str] | None = None
) -> Verdict:
    """The policy's own rules for one server that matches its targets. `fleet_marks`: the marks
    fleet keeps for the server when its dialect keeps no tags (they are read over its tags, which
    such a dialect sets at creation only); None when the server's marks are its tags."""
    if fleet_marks:
        server = replace(server, tags={**server.tags, **fleet_marks})
    reason = opt_out_reason(policy, server) or snooze_reason(policy, server, day)
    if reason is not None:
        return Verdict(False, reason)
    mode = policy.spec.mode
    if mode == "cleanup":
        return cleanup_verdict(policy, server, day)
    if mode == "mark":
        tag, _ = mark_value(policy, day)
        if tag in server.tags:
            return Verdict(False, f"already marked ({tag}={server.tags[tag]})")
    return ACT
