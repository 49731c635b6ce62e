"""What a user hands `fleet policies` and `fleet schedules` to create or change one: a spec file
(`--file`) or a merge patch (`--set` pairs or `--patch JSON`).

A file or patch that cannot be read or parsed raises `UsageError`, naming the option: the command
exits 2 and sends nothing.
"""

from __future__ import annotations

import json
import tomllib
from argparse import Namespace
from pathlib import Path

JSONDict = dict[str, object]


class UsageError(Exception):
    """A bad option value found after parsing (a file): exit 2, nothing sent."""


def _plural(what: str) -> str:
    return what[:-1] + "ies" if what.endswith("y") else what + "s"


def read_spec_file(path: str, what: str) -> JSONDict:
    """One `what` (`policy`, `schedule`) from a TOML or JSON file (by its suffix; JSON when it is
    neither): top-level keys, or a list of exactly one under the plural (`[[policies]]`, as in the
    config files)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--file {path}: cannot read it ({exc})") from None
    kind = "TOML" if path.endswith(".toml") else "JSON"
    try:
        data: object = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except ValueError as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise UsageError(f"--file {path}: not valid {kind} ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"--file {path}: expected one {what} (an object)")
    many = _plural(what)
    listed = data.get(many)
    if list(data) == [many] and isinstance(listed, list):
        if len(listed) != 1 or not isinstance(listed[0], dict):
            raise UsageError(f"--file {path}: expected one {what}, found {len(listed)}")
        return dict(listed[0])
    return data


def patch_body(args: Namespace) -> JSONDict:
    """`--patch JSON` or the `--set` pairs (`fleet.cli.args.setting`) as a merge patch."""
    if args.patch is not None:
        try:
            patch = json.loads(args.patch)
        except ValueError as exc:
            raise UsageError(f"--patch: not valid JSON ({exc})") from None
        if not isinstance(patch, dict):
            raise UsageError("--patch: expected a JSON object")
        return patch
    body: JSONDict = {}
    for keys, value in args.set or []:
        node = body
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[keys[-1]] = value
    return body
