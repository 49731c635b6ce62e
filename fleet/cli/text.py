"""How the CLI prints what the API answers: progress bars, summaries, plans and tables.

Lists end with `next: --cursor C` when the API has a further page (`fleet.cli.client.page_end`), so a
listing that stops at `--limit` never hides rows silently.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

ENDINGS = frozenset(
    {
        "succeeded",
        "completed_with_failures",
        "stopped",
        "cancelled",
        "refused",
        "planned",
        "rejected",
        "expired",
    }
)
STATE_ORDER = (
    "succeeded",
    "failed",
    "unknown",
    "skipped",
    "cancelled",
    "pending",
    "dispatching",
    "awaiting",
)


def _counts(op: Mapping[str, object]) -> dict[str, int]:
    raw = op.get("counts")
    return {str(k): int(str(v)) for k, v in raw.items()} if isinstance(raw, dict) else {}


def number(value: object) -> float:
    return float(str(value)) if value is not None else 0.0


def progress_line(op: Mapping[str, object], width: int = 28) -> str:
    progress = op.get("progress") if isinstance(op.get("progress"), dict) else {}
    assert isinstance(progress, dict)
    total, done = int(number(progress.get("total"))), int(number(progress.get("done")))
    finished = op.get("state") in ENDINGS
    filled = (width if finished else 0) if total == 0 else int(width * done / total)
    counts = _counts(op)
    eta = op.get("eta_seconds")
    eta_text = "-" if eta is None else f"{number(eta):.0f}s"
    return (
        f"{str(op.get('id', ''))[:12]:<12} [{'#' * filled}{'.' * (width - filled)}] "
        f"{done:>5}/{total:<5} {op.get('state')!s:<23} eta {eta_text:>5}  "
        f"ok {counts.get('succeeded', 0)}  failed {counts.get('failed', 0)}  "
        f"unknown {counts.get('unknown', 0)}  skipped {counts.get('skipped', 0)}  cancelled {counts.get('cancelled', 0)}"
    )


def waiting_lines(op: Mapping[str, object]) -> list[str]:
    """The operation's `waiting` notes: why its planning waits, one line each."""
    notes = op.get("waiting")
    return [
        f"  waiting ({w.get('endpoint') or 'planning'}, since {w.get('since')}): {w.get('reason')}"
        for w in (notes if isinstance(notes, list) else [])
        if isinstance(w, dict)
    ]


def approval_lines(op: Mapping[str, object]) -> list[str]:
    """Why the operation waits (or waited) for an approval, and the decision with who and when."""
    approval = op.get("approval")
    if not isinstance(approval, dict):
        return []
    state = approval.get("state")
    lines = [f"  approval: {state} ({approval.get('reason')})"]
    if state == "pending":
        lines.append(
            f"    until {approval.get('expires_at')}: another token runs "
            f"`fleet ops approve {op.get('id')}` or `fleet ops reject {op.get('id')}`"
        )
    elif approval.get("decided_by"):
        note = f": {approval.get('note')}" if approval.get("note") else ""
        lines.append(f"    by {approval.get('decided_by')} at {approval.get('decided_at')}{note}")
    else:
        lines.append(f"    at {approval.get('decided_at')}")
    return lines


def summary_text(op: Mapping[str, object]) -> str:
    counts = _counts(op)
    rows = [(s, counts.get(s, 0)) for s in STATE_ORDER if counts.get(s, 0)]
    lines = [f"operation {op.get('id')} ({op.get('action')}): {op.get('state')}"]
    for key in ("refused_reason", "halted_reason"):
        if op.get(key):
            lines.append(f"  {key.split('_')[0]}: {op.get(key)}")
    lines += waiting_lines(op) + approval_lines(op)
    lines.append(f"  {'state':<12} {'sub-jobs':>8}")
    lines += [f"  {state:<12} {n:>8}" for state, n in rows]
    lines.append(f"  {'total':<12} {sum(counts.values()):>8}")
    return "\n".join(lines)


def requeued_note(data: Mapping[str, object], op: Mapping[str, object], args: object) -> str:
    """After retry-failed: how many were requeued, and the unknown ones it left."""
    if "requeued" not in data:
        return ""
    counts = _counts(op)
    left = counts.get("unknown", 0)
    if left and not getattr(args, "include_unknown", False):
        return f" ({data['requeued']} requeued; {left} unknown left: --include-unknown takes them)"
    return f" ({data['requeued']} requeued)"


def plan_text(
    op: Mapping[str, object], plan: Mapping[str, object] | None, quota: object = None
) -> str:
    if plan is None:
        head = f"operation {op.get('id')}: still planning; see `fleet ops show {op.get('id')}`"
        return "\n".join([head, *waiting_lines(op), *_quota_lines(quota)])
    skipped = plan.get("skipped_by_reason") or {}
    assert isinstance(skipped, dict)
    why = ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items())) or "none"
    waves = plan.get("waves") or []
    assert isinstance(waves, list)
    lines = [
        f"dry run {op.get('id')} ({op.get('action')}): {plan.get('targets')} servers to act on, "
        f"{plan.get('skipped')} skipped ({why})",
        f"  waves: {', '.join(map(str, waves[:10]))}{' ...' if len(waves) > 10 else ''} "
        f"({plan.get('wave_count')} in all)",
        f"  {'rate key':<26} {'servers':>7} {'calls':>6}  {'budget':<28} {'send':>7}",
    ]
    keys = plan.get("rate_keys") or []
    assert isinstance(keys, list)
    for k in keys:
        budgets = ", ".join(str(b) for b in k.get("budgets") or []) or "unlimited"
        lines.append(
            f"  {k.get('rate_key'):<26} {k.get('servers'):>7} {k.get('calls'):>6}  "
            f"{budgets:<28} {number(k.get('send_seconds')):>6.1f}s"
        )
    if plan.get("refused_reason"):
        lines.append(f"  REFUSED: {plan.get('refused_reason')}")
    lines += _quota_lines(quota)
    lines.append(f"  ETA: {number(plan.get('eta_seconds')):.1f} s (from the rate limits)")
    return "\n".join(lines)


def _quota_lines(quota: object) -> list[str]:
    """A create's dry run: each endpoint's quota, as the cloud reported it at admission."""
    return [
        f"  quota of {q.get('endpoint')}: {q.get('used')} of {q.get('limit')} used, room for "
        f"{q.get('room')}; this create adds {q.get('requested')}"
        for q in (quota if isinstance(quota, list) else [])
        if isinstance(q, dict)
    ]


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def write_json(data: object, out: TextIO = sys.stdout) -> None:
    out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def page_end(page: Mapping[str, object], cursor_flag: str = "--cursor") -> str:
    """The line after a listing: where the next page starts, or nothing when this is the last."""
    more = page.get("next_cursor")
    return f"next: {cursor_flag} {more}\n" if more else ""


def one_line(text: object) -> str:
    """A vendor message in a table cell: whole, on one line."""
    return " ".join(str(text).split()) if text else ""
