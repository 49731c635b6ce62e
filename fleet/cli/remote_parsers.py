"""Parts of the `fleet` parser that talk to a service: the options every remote command takes,
and `fleet policies` / `fleet schedules`, which share their shape (list, create from a file, then
verbs on one named item, `update` by file or merge patch)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from fleet.cli.args import positive_int, setting


def remote_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="service URL (FLEET_URL; token: FLEET_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON")


def cursor_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cursor", default=None, help="start at this page (the 'next: --cursor ...' line)"
    )


def _spec_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    command: str,
    what: str,
    text: tuple[str, str],
    verbs: Sequence[tuple[str, str]],
    key: str,
) -> dict[str, argparse.ArgumentParser]:
    """`fleet policies` and `fleet schedules`: `list` and `create --file`, then the `verbs` on one
    named by `key` (`update` with its options). `text` is the help of the command and of `list`;
    the parsers of the `verbs` are returned for their own options."""
    group = sub.add_parser(command, help=text[0])
    gsub = group.add_subparsers(dest=f"{command}_command", required=True)
    remote_args(gsub.add_parser("list", help=text[1]))
    create = gsub.add_parser("create", help=f"create a {what} from a file (admin)")
    remote_args(create)
    create.add_argument("--file", required=True, help=f"one {what}, TOML (.toml) or JSON")
    parsers: dict[str, argparse.ArgumentParser] = {}
    for verb, help_text in verbs:
        cmd = parsers[verb] = gsub.add_parser(verb, help=help_text)
        remote_args(cmd)
        cmd.add_argument(key)
        if verb == "update":
            _update_args(cmd, what)
    return parsers


def schedules_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verbs = (
        ("show", "one schedule: its periods and next transitions"),
        ("update", "change a schedule (admin): --file (whole), --set or --patch (some keys)"),
        ("delete", "delete an API schedule (admin)"),
        ("preview", "every server tagged with the schedule: desired state now, next changes"),
    )
    text = (
        "per-server schedules: list, show, create, update, delete, preview",
        "schedules with their next transition",
    )
    cmds = _spec_parsers(sub, "schedules", "schedule", text, verbs, "name")
    cmds["preview"].add_argument("--n", type=positive_int, default=2, help="transitions per server")


def policies_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verbs = (
        ("show", "one policy: its state and its spec"),
        ("update", "change a policy (admin): --file (whole), --set or --patch (some keys)"),
        ("enable", "enable a policy (admin)"),
        ("disable", "disable a policy (admin): it stops firing"),
        ("delete", "delete an API policy at once (admin); its fires stay"),
        ("preview", "next fire times and what a fire would act on"),
        ("fires", "a policy's fires and skips, newest slot first"),
        ("run", "fire now (twice in one minute is one fire)"),
    )
    text = (
        "scheduled policies: list, show, create, update, enable, disable, delete",
        "policies with their next and last fire",
    )
    cmds = _spec_parsers(sub, "policies", "policy", text, verbs, "policy_id")
    cmds["preview"].add_argument("--n", type=positive_int, default=20, help="how many fire times")
    cmds["fires"].add_argument("--limit", type=positive_int, default=50)
    cursor_arg(cmds["fires"])


def _update_args(update: argparse.ArgumentParser, what: str) -> None:
    how = update.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--file", default=None, metavar="P", help=f"the whole {what}, TOML or JSON (PUT)"
    )
    how.add_argument(
        "--set",
        action="append",
        type=setting,
        metavar="KEY=VALUE",
        help="key=value, key dotted, value JSON or text (repeatable; PATCH)",
    )
    how.add_argument("--patch", default=None, metavar="JSON", help="a JSON merge patch (PATCH)")
    update.add_argument(
        "--if-match",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"only if the {what} is at version N",
    )
