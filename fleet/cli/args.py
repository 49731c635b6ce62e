"""Types for the command lines' options: a bad value is a usage error.

argparse turns the `ArgumentTypeError` these raise into `<prog>: error: argument --flag: <why>`
on stderr and exit status 2, before anything is sent to a service or a process is started.
"""

from __future__ import annotations

import argparse
import json
import re

from jobs.errors import InvalidSpec
from jobs.strategy import amount_json, parse_amount
from jobs.types import JSONValue


def key_value(text: str) -> tuple[str, str]:
    """`key=value` (the value may be empty, the key may not)."""
    key, sep, value = text.partition("=")
    if not key.strip() or not sep:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def setting(text: str) -> tuple[tuple[str, ...], object]:
    """`key=value` of `fleet policies update --set`: the key may be dotted (`params.flavor`); the
    value is JSON when it parses as JSON (`false`, `3`, `["a"]`, `null`), else the text itself."""
    key, sep, value = text.partition("=")
    keys = tuple(key.strip().split("."))
    if not sep or not all(keys):
        raise argparse.ArgumentTypeError(f"expected key=value (key may be dotted), got {text!r}")
    try:
        parsed: object = json.loads(value)
    except ValueError:
        parsed = value
    return keys, parsed


def exclude_tag(text: str) -> str:
    """`key=value`, or '' (no exclusion)."""
    if text:
        key_value(text)
    return text


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _amount(text: str, minimum: int) -> JSONValue:
    try:
        return amount_json(parse_amount(text, "", minimum=minimum))
    except InvalidSpec as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None


def amount(text: str) -> JSONValue:
    """A count (`3`) or a percentage (`10%`)."""
    return _amount(text, 0)


def waves(text: str) -> list[JSONValue]:
    """Comma-separated wave sizes, each a count >= 1 or a percentage > 0 (`1,10%,100%`)."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected sizes like 1,10%,100%, got {text!r}")
    return [_amount(p, 1) for p in parts]


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535, got {value}")
    return value


def worker_name(text: str) -> str:
    """A worker name as `engine.worker` takes it (letters, digits, `_ . : @ -`; 1-200)."""
    from fleet.settings import WORKER_NAME

    if not re.fullmatch(WORKER_NAME, text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a worker name: letters, digits and _ . : @ -, at most 200, "
            "starting with a letter or a digit"
        )
    return text
