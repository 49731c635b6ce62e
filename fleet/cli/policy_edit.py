"""`fleet policies show | create | update | enable | disable | delete`: one policy over the API.

- `create --file P.toml|P.json`: the file is one policy, the body of `POST /v1/policies` (TOML:
  top-level keys, or one `[[policies]]` entry as in the config files).
- `update ID --file P`: the whole policy (`PUT`); `update ID --set key=value ...` or
  `update ID --patch JSON`: only those keys (`PATCH`, a JSON merge patch). A `--set` key may be
  dotted (`params.flavor=s6.large.2`, `targets.tags_all.env=dev`); its value is read as JSON when
  it is JSON (`false`, `3`, `["ecs-sim"]`, `null` removes the key), else taken as text.
  `--if-match N` changes the policy only if it is still at version N.
- `enable ID` / `disable ID`: a `PATCH` of `enabled`.
- `delete ID`: deletes an API policy at once (no confirmation, like `fleet ops cancel`); its
  fires stay as history.

A file that cannot be read or parsed is a usage error (exit 2, naming `--file`); what the service
refuses is printed as for every command (exit 2).
"""

from __future__ import annotations

import json
from argparse import Namespace
from collections.abc import Mapping, Sequence
from typing import TextIO
from urllib.parse import quote

from fleet.cli.client import Client
from fleet.cli.spec_edit import UsageError, patch_body, read_spec_file
from fleet.cli.text import write_json

JSONDict = dict[str, object]


def policy_path(policy_id: str) -> str:
    return f"/v1/policies/{quote(policy_id, safe='')}"


def policy_text(data: Mapping[str, object]) -> str:
    """A policy as `show` (and every change) prints it: its state, then its spec key by key."""
    spec = data.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    state = "enabled" if spec.get("enabled") else "disabled"
    lines = [
        f"policy {data.get('id')} ({data.get('source')}, version {data.get('version')}, {state})"
    ]
    next_fire = data.get("next_fire")
    if isinstance(next_fire, Mapping):
        lines.append(f"next fire: {next_fire.get('local')}")
    last = data.get("last_fire")
    if isinstance(last, Mapping):
        lines.append(
            f"last fire: {last.get('scheduled_at')} {last.get('outcome') or last.get('status')}"
        )
    lines.append(f"updated: {data.get('updated_at')} by {data.get('updated_by')}")
    for key, value in spec.items():
        if key not in ("name", "enabled"):
            lines.append(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines)


def _print(args: Namespace, data: Mapping[str, object], out: TextIO, head: str = "") -> None:
    if args.json:
        write_json(data, out)
    else:
        out.write((head + "\n" if head else "") + policy_text(data) + "\n")


def _if_match(args: Namespace) -> dict[str, str] | None:
    version = getattr(args, "if_match", None)
    return None if version is None else {"If-Match": str(version)}


async def cmd_edit(args: Namespace, client: Client, out: TextIO) -> int:
    """The verbs that show or change one policy (`fleet.cli.policies.cmd_policies` routes here)."""
    verb = args.policies_command
    if verb == "create":
        data = await client.call("POST", "/v1/policies", body=read_spec_file(args.file, "policy"))
        _print(args, data, out, "created")
        return 0
    path = policy_path(args.policy_id)
    if verb == "show":
        _print(args, await client.call("GET", path), out)
        return 0
    if verb == "delete":
        data = await client.call("DELETE", path)
        if args.json:
            write_json(data, out)
        else:
            out.write(f"policy {data.get('id')} deleted (its fires stay as history)\n")
        return 0
    if verb in ("enable", "disable"):
        body: JSONDict = {"enabled": verb == "enable"}
        data = await client.call("PATCH", path, body=body)
        _print(args, data, out, f"{verb}d")
        return 0
    headers = _if_match(args)
    if args.file is not None:
        data = await client.call(
            "PUT", path, body=read_spec_file(args.file, "policy"), headers=headers
        )
    else:
        data = await client.call("PATCH", path, body=patch_body(args), headers=headers)
    _print(args, data, out, "updated")
    return 0


def usage(args: Namespace, exc: UsageError, err: TextIO) -> int:
    err.write(f"fleet policies {args.policies_command}: error: {exc}\n")
    return 2


EDIT_VERBS: Sequence[str] = ("show", "create", "update", "enable", "disable", "delete")
