"""The CLI's side of the REST API: `fleet run`, `fleet ops ...`, `fleet endpoints`, `fleet servers`
(and `fleet policies ...`, in `fleet.cli.policies`).

Everything goes over HTTP to a running service (`--url` or `FLEET_URL`, token from `FLEET_TOKEN` or
the file named by `FLEET_TOKEN_FILE`): the CLI has no database access of its own, so it works the
same against a laptop demo and a production replica. `--wait` follows the operation's event stream
with a progress bar (redrawn in place on a terminal, one line per step otherwise) and ends with a
per-state summary. Exit codes: 0 done without failures, 1 the operation failed, was stopped,
cancelled or refused, 2 a usage error (argparse, or a bad service URL: the option is named) or the
request was refused (the problem is printed), 3 no service reachable.
"""

from __future__ import annotations

import json
import os
from argparse import Namespace
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import quote, urlsplit

import aiohttp

from fleet.cli.text import (
    approval_lines,
    number,
    one_line,
    page_end,
    plan_text,
    progress_line,
    requeued_note,
    summary_text,
    table,
    waiting_lines,
    write_json,
)

DEFAULT_URL = "http://127.0.0.1:8080"
GOOD_ENDINGS = frozenset({"succeeded", "planned"})
JSONDict = dict[str, object]


class ApiError(Exception):
    """The service answered with a problem (4xx/5xx)."""

    def __init__(self, status: int, problem: Mapping[str, object]) -> None:
        self.status = status
        self.problem = dict(problem)
        super().__init__(f"{status} {problem.get('detail') or problem.get('title') or ''}")


def url_problem(url: str) -> str | None:
    """Why `url` cannot be the service's address (None when it can)."""
    try:
        parsed = urlsplit(url)
        parsed.port  # noqa: B018 (raises on a port that is not a number or out of range)
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return "expected http://host[:port] or https://host[:port]"
    return None


def token_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    token = env.get("FLEET_TOKEN", "").strip()
    if token:
        return token
    path = env.get("FLEET_TOKEN_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except OSError:
            return None
    return None


@dataclass
class Client:
    base_url: str
    token: str | None
    session: aiohttp.ClientSession

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: object | None = None,
        params: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> JSONDict:
        url = self.base_url.rstrip("/") + path
        async with self.session.request(
            method, url, json=body, params=list(params), headers=self._headers(headers)
        ) as resp:
            data = await resp.json(content_type=None) if resp.content_length != 0 else {}
            if resp.status >= 400:
                raise ApiError(resp.status, data if isinstance(data, dict) else {})
            return data if isinstance(data, dict) else {"value": data}

    async def events(self, operation_id: str) -> AsyncIterator[tuple[str, JSONDict]]:
        """The operation's server-sent events, reconnecting (with Last-Event-ID) if cut."""
        last_id: str | None = None
        for _attempt in range(5):
            headers = {"Accept": "text/event-stream"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            url = f"{self.base_url.rstrip('/')}/v1/operations/{operation_id}/events"
            timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
            async with self.session.get(
                url, headers=self._headers(headers), timeout=timeout
            ) as resp:
                if resp.status >= 400:
                    raise ApiError(resp.status, await resp.json(content_type=None))
                event, data = "message", ""
                async for raw in resp.content:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("id:"):
                        last_id = line[3:].strip()
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif not line and data:
                        parsed = json.loads(data)
                        yield event, parsed if isinstance(parsed, dict) else {}
                        if event == "end":
                            return
                        event, data = "message", ""


def exit_code(op: Mapping[str, object]) -> int:
    return 0 if op.get("state") in GOOD_ENDINGS else 1


async def watch(client: Client, operation_id: str, out: TextIO, err: TextIO) -> JSONDict:
    """Follow the operation to its end with a progress bar on `err`; return its final view."""
    live = err.isatty()
    shown: tuple[object, ...] | None = None
    last = ""
    final: JSONDict = await client.call("GET", f"/v1/operations/{operation_id}")
    async for event, data in client.events(operation_id):
        if event == "end":
            final = data
            break
        if event == "waiting":
            notes = waiting_lines(data) or ["  planning goes on"]
            err.write(("\n" if live else "") + "\n".join(notes) + "\n")
            err.flush()
            continue
        if event == "state" and data.get("state") == "pending_approval":
            err.write(("\n" if live else "") + "\n".join(approval_lines(data)) + "\n")
            err.flush()
            continue
        if event != "progress":
            continue
        line = progress_line(data)
        if live:
            err.write("\r" + line)
        else:
            progress = data.get("progress")
            pct = number(progress.get("percent")) if isinstance(progress, dict) else 0.0
            step = (data.get("state"), int(pct // 10))
            if step != shown:
                shown, last = step, line
                err.write(line + "\n")
        err.flush()
    line = progress_line(final)
    if live or line != last:
        err.write(("\r" if live else "") + line + "\n")
    err.flush()
    out.write(summary_text(final) + "\n")
    return final


# --- commands -------------------------------------------------------------------------------


def _pairs(values: Sequence[tuple[str, str]] | None) -> dict[str, str]:
    """`--tag`/`--set-tag` values (checked by argparse: `fleet.cli.args.key_value`)."""
    return dict(values or [])


def _creates(args: Namespace) -> bool:
    """`--count` makes a run a create: `--name` is then the template, `--tag` the tags to set."""
    return getattr(args, "count", None) is not None


def _targets(args: Namespace) -> JSONDict:
    if _creates(args):
        return {"endpoints": args.endpoint} if args.endpoint else {}
    targets: JSONDict = {}
    for key, value in (
        ("endpoints", args.endpoint),
        ("ids", args.id),
        ("statuses", args.status),
        ("tags_all", _pairs(args.tag)),
    ):
        if value:
            targets[key] = value
    if args.name:
        targets["name"] = args.name
    if args.exclude_tag is not None:
        targets["exclude_tag"] = args.exclude_tag or None
    return targets


def _params(args: Namespace) -> JSONDict:
    params: JSONDict = {}
    if args.type:
        params["type"] = args.type.upper()
    if args.flavor:
        params["flavor"] = args.flavor
    if args.live:
        params["live"] = True
    if args.set_tag:
        params["tags"] = _pairs(args.set_tag)
    if _creates(args):
        params |= _create_params(args)
    return params


def _create_params(args: Namespace) -> JSONDict:
    params: JSONDict = {"count": args.count}
    tags = _pairs(args.tag) | _pairs(args.set_tag)
    if tags:
        params["tags"] = tags
    for key, value in (
        ("name", args.name),
        ("image", args.image),
        ("network", args.network),
        ("vpc", args.vpc),
        ("availability_zone", args.zone),
        ("key_name", args.key_name),
        ("admin_password", args.admin_password),
    ):
        if value:
            params[key] = value
    return params


def _strategy(args: Namespace) -> JSONDict:
    strategy: JSONDict = {}
    if args.max_in_flight is not None:
        strategy["max_in_flight"] = args.max_in_flight
    if args.max_errors is not None:
        strategy["max_errors"] = args.max_errors
    if args.waves:
        strategy["waves"] = args.waves
    if args.pause_after_wave:
        strategy["pause_after_wave"] = True
    return strategy


def run_body(args: Namespace) -> JSONDict:
    """`fleet run` flags -> the POST /v1/operations body."""
    return {
        "action": args.action,
        "targets": _targets(args),
        "params": _params(args),
        "strategy": _strategy(args),
        "dry_run": bool(args.dry_run),
        "reason": args.reason or "",
    }


async def cmd_run(args: Namespace, client: Client, out: TextIO, err: TextIO) -> int:
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    data = await client.call("POST", "/v1/operations", body=run_body(args), headers=headers)
    if args.json and not args.wait:
        write_json(data, out)
        return 0
    if args.dry_run:
        op, plan = data.get("operation"), data.get("plan")
        assert isinstance(op, dict)
        out.write(plan_text(op, plan if isinstance(plan, dict) else None, data.get("quota")) + "\n")
        if _creates(args) and isinstance(plan, dict):
            out.write(await _planned_names(client, str(op.get("id"))))
        return 0
    out.write(f"operation {data.get('id')} accepted ({data.get('action')})\n")
    out.flush()
    if not args.wait:
        return 0
    final = await watch(client, str(data.get("id")), out, err)
    return exit_code(final)


async def _planned_names(client: Client, op_id: str, shown: int = 10) -> str:
    """The first servers a create's dry run planned (`endpoint/name`), for the plan's text."""
    page = await client.call(
        "GET", f"/v1/operations/{op_id}/subjobs", params=[("limit", str(shown))]
    )
    items = page.get("items") or []
    assert isinstance(items, list)
    names = [str(s.get("target_id")) for s in items if isinstance(s, dict)]
    more = " ..." if page.get("next_cursor") else ""
    return f"  servers: {', '.join(names)}{more}\n" if names else ""


def _page_params(args: Namespace) -> list[tuple[str, str]]:
    params = [("limit", str(args.limit))]
    params += [("state", args.state)] if args.state else []
    return params + ([("cursor", args.cursor)] if args.cursor else [])


async def _ops_list(args: Namespace, client: Client, out: TextIO) -> int:
    page = await client.call("GET", "/v1/operations", params=_page_params(args))
    if args.json:
        write_json(page, out)
        return 0
    items = page.get("items") or []
    assert isinstance(items, list)
    rows = [
        (
            o["id"],
            o["action"],
            o["state"],
            f"{o['progress']['done']}/{o['progress']['total']}",
            o["created_by"],
            o["created_at"][:19],
        )
        for o in items
    ]
    out.write(table(rows, ("id", "action", "state", "done", "created_by", "created_at")) + "\n")
    out.write(page_end(page))
    return 0


async def _ops_subjobs(args: Namespace, client: Client, out: TextIO) -> int:
    path = f"/v1/operations/{args.operation_id}/subjobs"
    page = await client.call("GET", path, params=_page_params(args))
    if args.json:
        write_json(page, out)
        return 0
    items = page.get("items") or []
    assert isinstance(items, list)
    rows = [
        (
            s["target_id"],
            s["name"] or "",
            s["state"],
            s["error_code"] or "",
            one_line(s["error_message"]),
            one_line(s["reason"]),
        )
        for s in items
    ]
    out.write(table(rows, ("target", "name", "state", "code", "message", "reason")) + "\n")
    out.write(page_end(page))
    return 0


async def cmd_ops(args: Namespace, client: Client, out: TextIO, err: TextIO) -> int:
    verb = args.ops_command
    if verb == "list":
        return await _ops_list(args, client, out)
    if verb == "subjobs":
        return await _ops_subjobs(args, client, out)
    op_id = str(args.operation_id)
    if verb == "watch":
        return exit_code(await watch(client, op_id, out, err))
    if verb in ("cancel", "pause", "resume", "retry-failed", "approve", "reject"):
        unknown, note = getattr(args, "include_unknown", False), getattr(args, "note", None)
        body = {"include_unknown": True} if unknown else ({"note": note} if note else None)
        data = await client.call("POST", f"/v1/operations/{op_id}/{verb}", body=body)
        op = data.get("operation", data)
        assert isinstance(op, dict)
        out.write(f"operation {op_id}: {op.get('state')}{requeued_note(data, op, args)}\n")
        return 0
    data = await client.call("GET", f"/v1/operations/{op_id}")
    if args.json:
        write_json(data, out)
    else:
        out.write(progress_line(data) + "\n" + summary_text(data) + "\n")
    return 0


async def cmd_endpoints(args: Namespace, client: Client, out: TextIO, err: TextIO) -> int:
    data = await client.call("GET", "/v1/endpoints")
    if args.json:
        write_json(data, out)
        return 0
    rows = []
    for ep in data.get("items") or []:  # type: ignore[attr-defined]
        for key in ep["rate_keys"]:
            budgets = ", ".join(
                f"{b['limit']} {b['unit']}/{b['period']:g}s" for b in key["budgets"]
            )
            used = ", ".join(f"{n} {u}" for u, n in key["used"].items()) or "0"
            name, provider, rate_key = ep["name"], ep["provider"], key["rate_key"]
            limits = budgets or "unlimited"
            rows.append((name, provider, rate_key, limits, used, key["queued"], key["throttled"]))
    header = ("endpoint", "provider", "rate key", "budget", "used", "queued", "throttled")
    out.write(table(rows, header) + "\n")
    return 0


async def cmd_flavors(args: Namespace, client: Client, out: TextIO, err: TextIO) -> int:
    endpoint = str(getattr(args, "endpoint_option", None) or args.endpoint)  # checked by argparse
    data = await client.call("GET", f"/v1/endpoints/{quote(endpoint, safe='')}/flavors")
    if args.json:
        write_json(data, out)
        return 0
    items = data.get("items")
    rows = (
        [(f["id"], f["name"]) for f in items if isinstance(f, dict)]
        if isinstance(items, list)
        else []
    )
    out.write(table(rows, ("id", "name")) + "\n")
    return 0


async def cmd_servers(args: Namespace, client: Client, out: TextIO, err: TextIO) -> int:
    params = [("limit", str(args.limit))]
    params += [("endpoint", e) for e in args.endpoint or []]
    params += [("tag", f"{k}={v}") for k, v in args.tag or []]
    params += [("status", s) for s in args.status or []]
    if args.name:
        params.append(("name", args.name))
    if args.cursor:
        params.append(("cursor", args.cursor))
    data = await client.call("GET", "/v1/servers", params=params)
    if args.json:
        write_json(data, out)
        return 0
    items = data.get("items") or []
    assert isinstance(items, list)
    rows = [(s["endpoint"], s["id"], s["name"], s["status"], s["flavor"] or "") for s in items]
    out.write(table(rows, ("endpoint", "id", "name", "status", "flavor")) + "\n")
    out.write(page_end(data))
    return 0
