"""`fleet schedules list | show NAME | create --file S | update NAME (--file S | --set K=V... |
--patch JSON) [--if-match N] | delete NAME | preview NAME [--n N]`: named per-server schedules
over the REST API.

A file is one schedule, the body of `POST /v1/schedules`: TOML (top-level keys with
`[[periods]]`, or one `[[schedules]]` entry as in the policy files) or JSON. `update --file`
replaces the whole schedule (`PUT`); `--set key=value` (a dotted key, a JSON value or text, as for
`fleet policies update`) or `--patch JSON` changes only those keys (`PATCH`, a JSON merge patch: a
list such as `periods` is given whole). A file or patch that cannot be read or parsed is a usage
error (exit 2, naming the option, nothing sent); what the service refuses (`422` naming the
field, `404`, `409`) exits 2, as for every command.
"""

from __future__ import annotations

import json
from argparse import Namespace
from collections.abc import Mapping, Sequence
from typing import TextIO
from urllib.parse import quote

from fleet.cli.client import Client
from fleet.cli.spec_edit import UsageError, patch_body, read_spec_file
from fleet.cli.text import table, write_json


def schedule_path(name: str) -> str:
    return f"/v1/schedules/{quote(name, safe='')}"


def _items(data: Mapping[str, object], key: str) -> list[Mapping[str, object]]:
    items = data.get(key)
    return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []


def _next(item: Mapping[str, object]) -> str:
    found = _items(item, "next_transitions")
    if not found:
        return "-"
    return f"{found[0].get('state')} at {str(found[0].get('local'))[:16]}"


def _period_text(p: Mapping[str, object]) -> str:
    days = p.get("weekdays") or []
    when = f"{p.get('begintime') or '00:00'}-{p.get('endtime') or '24:00'}"
    return when + (f" {','.join(str(d) for d in days)}" if isinstance(days, list) and days else "")


def schedule_text(data: Mapping[str, object]) -> str:
    spec = data.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    lines = [
        f"schedule {data.get('name')} ({data.get('source')}, version {data.get('version')}, "
        f"{spec.get('timezone')}): {data.get('state_now')} now"
    ]
    lines += [f"  period {_period_text(p)}" for p in _items(spec, "periods")]
    for key in ("skip_calendars", "skip_dates"):
        if spec.get(key):
            lines.append(f"  {key}: {json.dumps(spec[key])}")
    for t in _items(data, "next_transitions"):
        note = f"  ({t['note']})" if t.get("note") else ""
        lines.append(f"  next: {t.get('state')} at {t.get('local')}{note}")
    return "\n".join(lines)


def preview_text(data: Mapping[str, object]) -> str:
    lines = [
        f"schedule {data.get('schedule')}: {data.get('state_now')} now; "
        f"{data.get('tagged')} server(s) tagged fleet-schedule={data.get('schedule')}"
    ]
    rows: list[Sequence[object]] = [
        (
            s.get("endpoint"),
            s.get("server_id"),
            s.get("name"),
            s.get("status"),
            s.get("desired_now"),
            s.get("action_now") or "-",
            _next(s),
        )
        for s in _items(data, "servers")
    ]
    if rows:
        header = ("endpoint", "id", "name", "status", "desired", "action now", "next")
        lines.append(table(rows, header))
    if data.get("truncated"):
        lines.append("(more servers not shown)")
    return "\n".join(lines)


def _print(args: Namespace, data: Mapping[str, object], out: TextIO, head: str = "") -> None:
    if args.json:
        write_json(data, out)
    else:
        out.write((head + "\n" if head else "") + schedule_text(data) + "\n")


async def _list(args: Namespace, client: Client, out: TextIO) -> int:
    data = await client.call("GET", "/v1/schedules")
    if args.json:
        write_json(data, out)
        return 0
    rows: list[Sequence[object]] = []
    for s in _items(data, "items"):
        spec = s.get("spec")
        spec = spec if isinstance(spec, Mapping) else {}
        periods = "; ".join(_period_text(p) for p in _items(spec, "periods"))
        rows.append(
            (s.get("name"), s.get("source"), spec.get("timezone"), s.get("state_now"), _next(s),
             periods)
        )  # fmt: skip
    header = ("name", "source", "timezone", "now", "next", "periods")
    out.write(table(rows, header) + "\n" if rows else "no schedules\n")
    return 0


async def _edit(args: Namespace, client: Client, out: TextIO) -> int:
    verb = args.schedules_command
    if verb == "create":
        data = await client.call(
            "POST", "/v1/schedules", body=read_spec_file(args.file, "schedule")
        )
        _print(args, data, out, "created")
        return 0
    path = schedule_path(args.name)
    if verb == "update":
        headers = None if args.if_match is None else {"If-Match": str(args.if_match)}
        if args.file is not None:
            data = await client.call(
                "PUT", path, body=read_spec_file(args.file, "schedule"), headers=headers
            )
        else:
            data = await client.call("PATCH", path, body=patch_body(args), headers=headers)
        _print(args, data, out, "updated")
    elif verb == "delete":
        data = await client.call("DELETE", path)
        if args.json:
            write_json(data, out)
        else:
            out.write(f"schedule {data.get('name')} deleted\n")
    elif verb == "preview":
        data = await client.call("GET", f"{path}/preview", params=[("n", str(args.n))])
        if args.json:
            write_json(data, out)
        else:
            out.write(preview_text(data) + "\n")
    else:
        _print(args, await client.call("GET", path), out)
    return 0


async def cmd_schedules(args: Namespace, client: Client, out: TextIO, err: TextIO) -> int:
    if args.schedules_command == "list":
        return await _list(args, client, out)
    try:
        return await _edit(args, client, out)
    except UsageError as exc:
        err.write(f"fleet schedules {args.schedules_command}: error: {exc}\n")
        return 2
