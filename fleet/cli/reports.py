"""`fleet report savings` and `fleet drift`: what fleet's stops saved, and the servers that
drifted, read from the API (`/v1/reports/savings`, `/v1/drift`)."""

from __future__ import annotations

import csv
from argparse import Namespace
from collections.abc import Mapping
from typing import TextIO

from fleet.cli.client import Client
from fleet.cli.text import one_line, page_end, table, write_json

SAVINGS_COLUMNS = (
    "key", "servers", "hours", "bound_hours", "unpriced_hours", "cost", "still_stopped",
)  # fmt: skip


def _savings_params(args: Namespace) -> list[tuple[str, str]]:
    params = [("group_by", args.group_by), ("tz", args.tz)]
    if args.start:
        params.append(("from", args.start))
    if args.end:
        params.append(("to", args.end))
    return params


def _items(data: Mapping[str, object], key: str) -> list[dict[str, object]]:
    found = data.get(key)
    return [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []


def _row(row: Mapping[str, object]) -> list[object]:
    return [row[c] for c in SAVINGS_COLUMNS]


async def cmd_report(args: Namespace, client: Client, out: TextIO, err: TextIO) -> int:
    data = await client.call("GET", "/v1/reports/savings", params=_savings_params(args))
    if args.json:
        write_json(data, out)
        return 0
    rows = _items(data, "rows")
    total = data["total"]
    assert isinstance(total, dict)
    if args.csv:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([args.group_by, *SAVINGS_COLUMNS[1:], "currency"])
        for row in [*rows, total]:
            writer.writerow([*_row(row), data["currency"]])
        return 0
    currency = data["currency"]
    lines = [
        [r["key"], r["servers"], f"{r['hours']:.2f}", f"{r['bound_hours']:.2f}",
         f"{r['cost']:.2f} {currency}", r["still_stopped"]]
        for r in [*rows, total]
    ]  # fmt: skip
    header = (str(args.group_by), "servers", "hours", "of which bound", "saved", "still stopped")
    out.write(f"savings {data['from']} .. {data['to']} ({currency})\n")
    out.write(table(lines, header) + "\n")
    if total["unpriced_hours"]:
        out.write(f"{total['unpriced_hours']:.2f} h of flavors without a price ([prices])\n")
    return 0


async def cmd_drift(args: Namespace, client: Client, out: TextIO, err: TextIO) -> int:
    params = [("limit", str(args.limit))]
    for name in ("since", "policy", "endpoint"):
        if getattr(args, name):
            params.append((name, getattr(args, name)))
    if args.cursor:
        params.append(("before", args.cursor))
    data = await client.call("GET", "/v1/drift", params=params)
    if args.json:
        write_json(data, out)
        return 0
    items = _items(data, "items")
    rows = [
        [d["detected_at"], d["endpoint"], d["server_id"], d["kind"], d["desired"],
         d["observed"], d["policy"] or "", d["enforcement"] or "", one_line(d["detail"])]
        for d in items
    ]  # fmt: skip
    header = (
        "detected", "endpoint", "server", "kind", "desired", "observed", "policy", "enforced",
        "detail",
    )  # fmt: skip
    out.write(table(rows, header) + "\n")
    out.write(page_end(data))
    return 0
