"""`fleet policies list | preview ID [--n N] | fires ID [--limit N] [--cursor C] | run ID`:
scheduled policies over the REST API (`show`, `create`, `update`, `enable`, `disable` and `delete`
are in `fleet.cli.policy_edit`).

Same conventions as `fleet.cli.client` (URL and token from the environment, `--json` prints the API's
answer, exit 2 when the service refuses, 3 when it cannot be reached). `run` exits 1 when the fire
failed or was refused (its operation refused by admission or by planning); a skip (no servers to
act on) is not a failure.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping, Sequence
from typing import TextIO

from fleet.cli.client import Client
from fleet.cli.policy_edit import EDIT_VERBS, cmd_edit, policy_path, usage
from fleet.cli.spec_edit import UsageError
from fleet.cli.text import page_end, table, write_json


def _slot_text(slot: object) -> str:
    if not isinstance(slot, Mapping):
        return "-"
    return str(slot.get("local") or slot.get("at") or "-")[:25]


def _fire_text(fire: object) -> str:
    if not isinstance(fire, Mapping):
        return "-"
    return f"{fire.get('outcome') or fire.get('status')} {str(fire.get('scheduled_at', ''))[:16]}"


def _items(data: Mapping[str, object], key: str) -> list[Mapping[str, object]]:
    items = data.get(key)
    assert isinstance(items, list)
    return [i for i in items if isinstance(i, Mapping)]


async def _list(args: Namespace, client: Client, out: TextIO) -> int:
    data = await client.call("GET", "/v1/policies")
    if args.json:
        write_json(data, out)
        return 0
    rows: list[Sequence[object]] = []
    for p in _items(data, "items"):
        spec = p["spec"]
        assert isinstance(spec, Mapping)
        action = spec.get("action") or spec.get("mode")
        flags = "dry-run" if spec.get("dry_run_only") else ""
        state = "enabled" if spec.get("enabled") else "disabled"
        rows.append(
            (
                p["id"],
                p["source"],
                state,
                spec.get("cron"),
                spec.get("timezone"),
                action,
                _slot_text(p.get("next_fire")),
                _fire_text(p.get("last_fire")),
                flags,
            )
        )
    header = ("id", "source", "state", "cron", "timezone", "action", "next", "last", "")
    out.write(table(rows, header) + "\n" if rows else "no policies\n")
    return 0


def preview_text(data: Mapping[str, object]) -> str:
    """Fire times (skipped ones with the reason), then what a fire now would act on."""
    lines = [
        f"policy {data.get('policy_id')}" + (" (dry run only)" if data["dry_run_only"] else "")
    ]
    lines.append("next fire times:")
    for slot in _items(data, "slots"):
        what = "fires" if slot.get("fires") else f"skipped: {slot.get('skipped_reason')}"
        note = f"  ({slot['note']})" if slot.get("note") else ""
        lines.append(f"  {slot.get('local')}  {what}{note}")
    targets = data["targets"]
    assert isinstance(targets, Mapping)
    lines.append(
        f"a fire now: {targets.get('acting')} of {targets.get('considered')} servers to act on"
    )
    skipped = targets.get("skipped_by_reason") or {}
    assert isinstance(skipped, Mapping)
    for reason, count in skipped.items():
        lines.append(f"  skipped {count}: {reason}")
    planner = targets.get("planner_skips") or {}
    assert isinstance(planner, Mapping)
    for reason, count in planner.items():
        lines.append(f"  the planner will skip {count}: {reason}")
    servers = _items(targets, "servers")
    marks = any(s.get("mark_kept") for s in servers)  # mark and clean-up policies
    rows = [
        (
            s.get("endpoint"),
            s.get("server_id"),
            s.get("name"),
            s.get("status"),
            "act" if s.get("act") else "skip",
            *((s.get("mark_kept") or "",) if marks else ()),
            s.get("reason") or s.get("planner_skip") or "",
        )
        for s in servers
    ]
    if rows:
        header = ("endpoint", "id", "name", "status", "", *(("mark kept",) if marks else ()))
        lines.append(table(rows, (*header, "reason")))
    if targets.get("truncated"):
        lines.append("(more servers not shown)")
    return "\n".join(lines)


async def _preview(args: Namespace, client: Client, out: TextIO) -> int:
    path = f"{policy_path(args.policy_id)}/preview"
    data = await client.call("GET", path, params=[("n", str(args.n))])
    if args.json:
        write_json(data, out)
    else:
        out.write(preview_text(data) + "\n")
    return 0


async def _fires(args: Namespace, client: Client, out: TextIO) -> int:
    params = [("limit", str(args.limit))] + ([("before", args.cursor)] if args.cursor else [])
    data = await client.call("GET", f"{policy_path(args.policy_id)}/fires", params=params)
    if args.json:
        write_json(data, out)
        return 0
    rows = [
        (
            f.get("id"),
            str(f.get("scheduled_at", ""))[:19],
            f.get("trigger"),
            f.get("status"),
            f.get("outcome") or "",
            f.get("operation_id") or "",
            f.get("targets"),
            " ".join(str(f.get("outcome_reason") or f.get("reason") or "").split()),
        )
        for f in _items(data, "items")
    ]
    header = ("fire", "slot", "trigger", "status", "outcome", "operation", "targets", "reason")
    out.write(table(rows, header) + "\n" if rows else "no fires\n")
    out.write(page_end(data))
    return 0


def run_text(policy_id: str, data: Mapping[str, object]) -> str:
    fire = data["fire"]
    assert isinstance(fire, Mapping)
    slot = str(fire.get("scheduled_at"))
    head = f"policy {policy_id}: slot {slot} "
    head += "fired now" if data.get("created") else "had fired already (nothing new)"
    status = fire.get("status")
    if fire.get("operation_id"):
        kind = "dry-run operation" if fire.get("dry_run") else "operation"
        detail = f"{kind} {fire['operation_id']} on {fire.get('targets')} servers"
        outcome, why = fire.get("outcome"), fire.get("outcome_reason")
        detail += f": {outcome}" + (f" ({why})" if why else "")
    else:
        detail = f"{fire.get('outcome') or status}: {fire.get('reason') or 'no operation'}"
    return f"{head}\n  {detail}"


async def _run(args: Namespace, client: Client, out: TextIO) -> int:
    data = await client.call("POST", f"{policy_path(args.policy_id)}/run")
    if args.json:
        write_json(data, out)
    else:
        out.write(run_text(str(args.policy_id), data) + "\n")
    fire = data.get("fire")
    bad = ("failed", "refused")
    if not isinstance(fire, Mapping):
        return 0
    return 1 if fire.get("status") in bad or fire.get("outcome") in bad else 0


async def cmd_policies(args: Namespace, client: Client, out: TextIO, err: TextIO) -> int:
    verb = args.policies_command
    if verb in EDIT_VERBS:
        try:
            return await cmd_edit(args, client, out)
        except UsageError as exc:
            return usage(args, exc, err)
    if verb == "list":
        return await _list(args, client, out)
    if verb == "preview":
        return await _preview(args, client, out)
    if verb == "fires":
        return await _fires(args, client, out)
    return await _run(args, client, out)
