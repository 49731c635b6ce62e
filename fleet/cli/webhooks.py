"""`fleet webhooks create | list | show | update | delete | deliveries | test`: webhook
subscriptions over the REST API (admin tokens).

Same conventions as `fleet.cli.client` (URL and token from the environment, `--json` prints the
API's answer, exit 2 when the service refuses, 3 when it cannot be reached). `--to` is the
receiver's URL (`--url` is the service's, as everywhere). `--secret` takes
where the secret is (`env:NAME` or `file:PATH`), never the secret. `test` exits 1 when the
receiver did not answer 2xx.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping
from typing import TextIO

from fleet.cli.client import Client
from fleet.cli.text import page_end, table, write_json

FILTER_FLAGS = (
    ("filter_endpoint", "endpoint"),
    ("filter_policy", "policy"),
    ("filter_state", "state"),
)


def _path(webhook_id: str) -> str:
    return f"/v1/webhooks/{webhook_id}"


def _events(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [e.strip() for v in values for e in v.split(",") if e.strip()]


def _filter(args: Namespace) -> dict[str, list[str]] | None:
    named = {key: getattr(args, flag) for flag, key in FILTER_FLAGS if getattr(args, flag)}
    if getattr(args, "no_filter", False):
        return {}
    return named or None


def _body(args: Namespace) -> dict[str, object]:
    body: dict[str, object] = {}
    if args.to_url is not None:
        body["url"] = args.to_url
    for key in ("secret", "description"):
        if getattr(args, key, None) is not None:
            body[key] = getattr(args, key)
    events = _events(args.events)
    if events is not None:
        body["events"] = events
    chosen = _filter(args)
    if chosen is not None:
        body["filter"] = chosen or None
    if getattr(args, "enabled", None) is not None:
        body["enabled"] = args.enabled
    return body


def _filter_text(f: object) -> str:
    if not isinstance(f, Mapping) or not f:
        return "-"
    return " ".join(
        f"{k}={','.join(str(x) for x in v)}" for k, v in f.items() if isinstance(v, list)
    )


def _show_text(w: Mapping[str, object]) -> str:
    events = w.get("events")
    lines = [
        f"webhook {w['id']}" + ("" if w.get("enabled") else " (disabled)"),
        f"  url:     {w.get('url')}",
        f"  events:  {', '.join(str(e) for e in events) if isinstance(events, list) else '-'}",
        f"  filter:  {_filter_text(w.get('filter'))}",
        f"  secret:  {w.get('secret')} (write-only)",
    ]
    if w.get("description"):
        lines.append(f"  about:   {w['description']}")
    lines.append(f"  created: {w.get('created_at')} by {w.get('created_by')}")
    return "\n".join(lines)


async def _list(args: Namespace, client: Client, out: TextIO) -> int:
    data = await client.call("GET", "/v1/webhooks")
    if args.json:
        write_json(data, out)
        return 0
    items = data.get("items")
    rows = [
        (
            w.get("id"),
            "on" if w.get("enabled") else "off",
            w.get("url"),
            ",".join(str(e) for e in w.get("events") or []),
            _filter_text(w.get("filter")),
        )
        for w in (items if isinstance(items, list) else [])
        if isinstance(w, Mapping)
    ]
    out.write(
        table(rows, ("id", "", "url", "events", "filter")) + "\n" if rows else "no webhooks\n"
    )
    return 0


def delivery_rows(items: object) -> list[tuple[object, ...]]:
    return [
        (
            d.get("id"),
            d.get("type"),
            str(d.get("subject"))[:32],
            d.get("status"),
            d.get("attempts"),
            d.get("status_code") if d.get("status_code") is not None else "-",
            d.get("latency_ms") if d.get("latency_ms") is not None else "-",
            str(d.get("time"))[:19],
            d.get("error") or "",
        )
        for d in (items if isinstance(items, list) else [])
        if isinstance(d, Mapping)
    ]


DELIVERY_HEADER = ("id", "type", "subject", "status", "tries", "code", "ms", "time", "error")


async def _deliveries(args: Namespace, client: Client, out: TextIO) -> int:
    params = [("limit", str(args.limit))]
    if args.status:
        params.append(("status", args.status))
    if args.cursor:
        params.append(("before", args.cursor))
    data = await client.call("GET", f"{_path(args.webhook_id)}/deliveries", params=params)
    if args.json:
        write_json(data, out)
        return 0
    rows = delivery_rows(data.get("items"))
    out.write(table(rows, DELIVERY_HEADER) + "\n" if rows else "no deliveries\n")
    out.write(page_end(data))
    return 0


async def _test(args: Namespace, client: Client, out: TextIO) -> int:
    data = await client.call("POST", f"{_path(args.webhook_id)}/test")
    if args.json:
        write_json(data, out)
    else:
        code = data.get("status_code")
        what = f"HTTP {code}" if code is not None else str(data.get("error"))
        out.write(
            f"test event {data.get('event_id')}: {data.get('status')} ({what}, {data.get('latency_ms')} ms)\n"
        )
    return 0 if data.get("status") == "delivered" else 1


async def cmd_webhooks(args: Namespace, client: Client, out: TextIO, err: TextIO) -> int:
    verb = args.webhooks_command
    if verb == "list":
        return await _list(args, client, out)
    if verb == "deliveries":
        return await _deliveries(args, client, out)
    if verb == "test":
        return await _test(args, client, out)
    if verb == "create":
        data = await client.call("POST", "/v1/webhooks", body=_body(args))
    elif verb == "update":
        body = _body(args)
        if not body:
            err.write(
                "fleet webhooks update: error: nothing to change (give --url, --events, ...)\n"
            )
            return 2
        data = await client.call("PATCH", _path(args.webhook_id), body=body)
    elif verb == "delete":
        data = await client.call("DELETE", _path(args.webhook_id))
    else:
        data = await client.call("GET", _path(args.webhook_id))
    if args.json:
        write_json(data, out)
    else:
        out.write(("deleted " if verb == "delete" else "") + _show_text(data) + "\n")
    return 0
