"""Query strings in one canonical form, used both on the wire and in Huawei AK/SK signatures.

Pairs are sorted by (key, value), list values expanded and sorted, booleans lower-cased, and every
key and value percent-encoded with only `~` kept (the signing rules of the official Huawei SDK).
Sending exactly the form that is signed means the signature holds whatever the server re-derives.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

QueryValue = str | int | bool | Sequence[str]


def _enc(value: str) -> str:
    return quote(value, safe="~")


def _query_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def canonical_query(params: Sequence[tuple[str, QueryValue]]) -> str:
    """Pairs sorted by (key, value); list values expanded and sorted; booleans lower-cased."""
    parts: list[str] = []
    for key, value in sorted(params, key=lambda kv: (kv[0], _sort_value(kv[1]))):
        k = _enc(key)
        if isinstance(value, str | int | bool):
            parts.append(f"{k}={_enc(_query_value(value))}")
        else:
            parts.extend(f"{k}={_enc(str(v))}" for v in sorted(value))
    return "&".join(parts)


def _sort_value(value: QueryValue) -> str:
    if isinstance(value, str | int | bool):
        return _query_value(value)
    return ",".join(sorted(value))
