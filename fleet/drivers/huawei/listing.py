"""The ECS v1 server list with details, `GET /v1/{project_id}/cloudservers/detail`, as the ECS
driver reads it for selectors without tag criteria that name servers by a glob (`uses_v1_list`).

Parameters are the official ECS SDK's (`ListServersDetailsRequest`): `limit` (at most 1,000),
`offset` (a page NUMBER, from 1), `marker` (the id of the last server of the previous page),
`status` (one value), `name` ("fuzzy match") and more; the answer is `{"count": <total matches>,
"servers": [ServerDetail]}`. `ServerDetail` carries every field fleet reads from the native list
(`status`, `OS-EXT-STS:task_state`/`vm_state`, `flavor.id`, `tags` as "key=value" strings,
`locked`, `fault`, `updated`), so the native parser reads it.

Paging: the first page by `offset=1` (which also gives `count`), the next ones by `marker`, so a
server deleted while the list is read cannot shift another one out of a page (page numbers
would); the next page is asked for as soon as a full page arrives, and the list ends on a short
page or once `count` servers have come (no empty last page).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Mapping

from fleet.domain import Selector, ServerStatus
from fleet.drivers.http import Transport
from fleet.drivers.novacommon import paged
from fleet.drivers.query import QueryValue

DETAIL = "detail"  # the API class (rate key `<endpoint>:detail`) of the v1 list

S = ServerStatus
STATUS_FILTER: Mapping[ServerStatus, str] = {
    S.RUNNING: "ACTIVE",
    S.STOPPED: "SHUTOFF",
    S.VERIFY_RESIZE: "VERIFY_RESIZE",
    S.ERROR: "ERROR",
}
_GLOB = "*?["
# Characters sent in `name`: a run of them matches literally as a substring, as a SQL LIKE
# pattern (`_` any one character) and as a regular expression (`.` any character) alike, so
# whatever "fuzzy match" means server-side, every server the glob matches is in the answer.
_NAME_SAFE = frozenset("-_. ")


def _safe(char: str) -> bool:
    return char.isalnum() or char in _NAME_SAFE


def name_hint(pattern: str | None) -> str | None:
    """The longest literal run of a shell glob every matching name contains (None: none).

    Bracket expressions (`[ab]`) split runs and are skipped; an unclosed `[` ends the search (its
    meaning is then literal in fnmatch, and nothing after it is relied on)."""
    if not pattern:
        return None
    runs: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char in _GLOB or not _safe(char):
            runs.append("".join(current))
            current = []
            if char == "[":
                close = _bracket_end(pattern, i)
                if close < 0:
                    break
                i = close
        else:
            current.append(char)
        i += 1
    else:
        runs.append("".join(current))
    best = max(runs, key=len, default="")
    return best or None


def _bracket_end(pattern: str, start: int) -> int:
    """Where the bracket expression opened at `start` closes (-1: never); as fnmatch reads it, a
    `]` right after `[` or `[!` is a member, not the end."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "!":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    return pattern.find("]", i)


def uses_v1_list(selector: Selector) -> bool:
    """Whether the v1 list serves `selector` better than the native one: no tag criteria (those
    go to query-by-tag), and a name glob with a literal part the v1 list filters by server-side
    (the native list is not sent the name). Without a name, both lists read the same servers and
    the v1 one was not faster (docs/benchmarks.md)."""
    return not selector.has_tag_criteria and name_hint(selector.name_pattern) is not None


def v1_list_query(selector: Selector) -> list[tuple[str, QueryValue]]:
    """Server-side narrowing of the v1 list: one status, and a literal part of the name glob.
    `Selector.matches` stays the authority."""
    query: list[tuple[str, QueryValue]] = []
    if len(selector.statuses) == 1:
        (status,) = selector.statuses
        if status in STATUS_FILTER:
            query.append(("status", STATUS_FILTER[status]))
    hint = name_hint(selector.name_pattern)
    if hint is not None:
        query.append(("name", hint))
    return query


async def v1_detail_pages(
    transport: Transport,
    path: str,
    *,
    page_size: int,
    query: list[tuple[str, QueryValue]],
) -> AsyncGenerator[object, None]:
    """Every server body of the v1 list, to the end (see the module docstring for the paging)."""
    async with contextlib.aclosing(
        paged(
            transport,
            path,
            "servers",
            api_class=DETAIL,
            page_size=page_size,
            query=query,
            headers={},
            first=[("offset", "1")],
            total="count",
        )
    ) as pages:
        async for body in pages:
            yield body
