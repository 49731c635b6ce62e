"""Narrowing parsed JSON (typed `object`) without `Any`: cloud bodies are untrusted input."""

from __future__ import annotations


def as_dict(value: object) -> dict[str, object]:
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    return {}


def as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def opt_str(value: object) -> str | None:
    """Strings as they are, numbers as text, anything else (None, objects) as None."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    return None


def str_list(value: object) -> list[str]:
    return [v for v in as_list(value) if isinstance(v, str)]
