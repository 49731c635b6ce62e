"""How long a tag in a server filter may be.

Huawei's query-by-tag call (ECS `POST /v1/{project}/servers/resource_instances/action`, the one
cloud call that carries a tag filter) refuses a key over 127 or a value over 255 characters. No
cloud's tags are that long (Huawei ECS and BMS keys 36 and values 43 characters, Nova tags 80 on
Huawei and 60 on EasyStack, `key=value` included), so a longer filter can match nothing anywhere:
it is a bad field, refused before any cloud is asked (422 in the API), never a cloud error (502).
"""

from __future__ import annotations

from collections.abc import Iterable

from fleet.domain import Selector

MAX_FILTER_KEY = 127
MAX_FILTER_VALUE = 255


def _too_long(text: str, limit: int, what: str) -> str | None:
    if len(text) <= limit:
        return None
    shown = text if len(text) <= 24 else f"{text[:20]}..."
    return (
        f"{what} {shown!r} has {len(text)} characters: at most {limit} (no cloud's tags are longer)"
    )


def _pairs_problem(pairs: Iterable[tuple[str, Iterable[str]]]) -> str | None:
    for key, values in pairs:
        problem = _too_long(key, MAX_FILTER_KEY, "tag key")
        for value in values:
            problem = problem or _too_long(value, MAX_FILTER_VALUE, "tag value")
        if problem:
            return problem
    return None


def filter_tag_problem(
    selector: Selector, exclude_tag: tuple[str, str] | None
) -> tuple[str, str] | None:
    """(field, message) for the first tag in the filter longer than any cloud allows, else None."""
    checks: list[tuple[str, list[tuple[str, Iterable[str]]]]] = [
        ("selector.tags_all", [(k, (v,)) for k, v in selector.tags_all.items()]),
        ("selector.tags_any", list(selector.tags_any.items())),
        ("selector.tags_none", list(selector.tags_none.items())),
        (
            "selector.exclude_tag",
            [] if exclude_tag is None else [(exclude_tag[0], exclude_tag[1:])],
        ),
    ]
    for field, pairs in checks:
        problem = _pairs_problem(pairs)
        if problem:
            return field, problem
    return None
