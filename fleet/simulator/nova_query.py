"""Server list filters and limit/marker paging, as Nova applies them (digest §2.2.2, §2.4).

Order is Nova's default, newest first (`created` descending, then id). A marker is looked up among
all of the surface's servers, not only the filtered ones (Nova sorts from the marker's own sort
values), and an unknown marker is 400. A full page carries a `next` link with the same query and
the last id as marker. `changes-since` includes deleted servers, as Nova does, so a poller sees
them go. Tag filters (`tags`, `tags-any`, `not-tags`, `not-tags-any`, comma lists) exist only on
a surface with the tag API from 2.26 and are ignored below it (Nova's schema drops unknown
parameters). Upstream Nova (EasyStack) compares whole tags; on Huawei an item `k=v` matches that
tag exactly and a bare `k` matches the key (Huawei: "a list of tag keys").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import urlencode

from fleet.simulator.nova_base import MAX_PAGE, Call, fail, owned
from fleet.simulator.nova_tags import one_d, split
from fleet.simulator.world import Server

T = TypeVar("T")

# Huawei's documented filter values (T6-31); other values: empty list < 2.38, 400 from 2.38.
HUAWEI_STATUSES = frozenset(
    [
        "ACTIVE",
        "BUILD",
        "ERROR",
        "HARD_REBOOT",
        "MIGRATING",
        "REBOOT",
        "REBUILD",
        "RESIZE",
        "REVERT_RESIZE",
        "SHUTOFF",
        "VERIFY_RESIZE",
    ]
)
# Nova's full set, served on the OpenStack surface.
NOVA_STATUSES = HUAWEI_STATUSES | frozenset(
    [
        "DELETED",
        "PASSWORD",
        "PAUSED",
        "RESCUE",
        "SHELVED",
        "SHELVED_OFFLOADED",
        "SOFT_DELETED",
        "SUSPENDED",
        "UNKNOWN",
    ]
)
TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")
_TRUE = frozenset({"1", "t", "true", "on", "y", "yes"})


def _bool(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def _timestamp(call: Call, name: str) -> datetime | None:
    raw = call.request.query.get(name)
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw.strip().replace(" ", "+"))
    except ValueError:
        raise fail(call.surface, 400, f"Invalid filter field: {name}.") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _statuses(call: Call) -> set[str] | None:
    """The requested statuses (repeatable, case-insensitive); None if not filtered."""
    given = [s.strip().upper() for s in call.request.query.getall("status", []) if s.strip()]
    if not given:
        return None
    valid = HUAWEI_STATUSES if call.surface.huawei else NOVA_STATUSES
    unknown = [s for s in given if s not in valid]
    if unknown and call.at_least(2, 38):
        raise fail(call.surface, 400, f"Invalid status value: {unknown[0].lower()}")
    return {s for s in given if s in valid}


def _pool(call: Call, statuses: set[str] | None) -> Callable[[Server], bool] | None:
    """Which of the surface's servers in the caller's project show: deleted ones only where they
    show (None: all of them)."""
    query = call.request.query
    if call.surface.recycle_bin and _bool(query.get("deleted")):
        return lambda s: s.deleted_at is not None
    with_deleted = "changes-since" in query or (statuses is not None and "DELETED" in statuses)
    return None if with_deleted else lambda s: s.deleted_at is None


def _name_matcher(pattern: str) -> Callable[[str], bool]:
    """Nova matches `name` as a regular expression (a plain substring if it is not one)."""
    try:
        compiled = re.compile(pattern)
    except re.error:
        return lambda name: pattern in name
    return lambda name: compiled.search(name) is not None


def _has(tags: Sequence[str], item: str, by_key: bool) -> bool:
    """Upstream Nova compares whole tags; Huawei also lets a bare `k` match a `k=v` tag."""
    if "=" in item or not by_key:
        return item in tags
    return any(split(t)[0] == item for t in tags)


def _tag_filter(call: Call) -> Callable[[Server], bool] | None:
    query = call.request.query
    given = {f: [t for t in query[f].split(",") if t] for f in TAG_FILTERS if f in query}
    if not given:
        return None
    if not call.surface.tag_api or not call.at_least(2, 26):
        return None
    by_key = call.surface.huawei

    def keep(server: Server) -> bool:
        tags = one_d(server, with_reserved=True)
        checks = {
            "tags": lambda items: all(_has(tags, i, by_key) for i in items),
            "tags-any": lambda items: any(_has(tags, i, by_key) for i in items),
            "not-tags": lambda items: not all(_has(tags, i, by_key) for i in items),
            "not-tags-any": lambda items: not any(_has(tags, i, by_key) for i in items),
        }
        return all(checks[f](items) for f, items in given.items() if items)

    return keep


def _predicates(call: Call, statuses: set[str] | None) -> list[Callable[[Server], bool]]:
    query = call.request.query
    preds: list[Callable[[Server], bool]] = []
    if statuses is not None:
        preds.append(lambda s: s.status in statuses)
    if query.get("name"):
        matcher = _name_matcher(query["name"])
        preds.append(lambda s: matcher(s.name))
    if query.get("flavor"):
        wanted = query["flavor"]
        fuzzy = call.surface.huawei  # Huawei: "fuzzy-matched"
        preds.append(lambda s: wanted in s.flavor_id if fuzzy else s.flavor_id == wanted)
    since, before = _timestamp(call, "changes-since"), _timestamp(call, "changes-before")
    if since is not None:
        preds.append(lambda s: s.updated >= since)
    if before is not None:
        preds.append(lambda s: s.updated <= before)
    tag_pred = _tag_filter(call)
    if tag_pred is not None:
        preds.append(tag_pred)
    return preds


def server_page(call: Call) -> tuple[list[Server], list[dict[str, str]]]:
    """One page of the filtered servers, newest first, after the marker; the `next` link if the
    page is full. It walks the world's (created, id) index from the marker, so a page costs the
    servers it passes, not the world."""
    statuses = _statuses(call)
    shown = _pool(call, statuses)
    preds = _predicates(call, statuses)
    if shown is not None:
        preds.insert(0, shown)
    limit = _limit(call)
    ordered = call.ctx.world.servers.by_order_key(call.surface.kinds, call.project_id)
    start = len(ordered)  # index just past the first (newest) server of the page
    marker = call.request.query.get("marker")
    if marker is not None:
        server = call.ctx.world.servers.get(marker)
        if server is None or not owned(call, server):
            raise fail(call.surface, 400, f"marker [{marker}] not found")
        start = ordered.below(server_order(server))
    if statuses is not None and not statuses:
        return [], []  # only unknown statuses below 2.38: Nova answers an empty list
    page: list[Server] = []
    for i in range(start - 1, -1, -1):
        candidate = ordered[i]
        if all(p(candidate) for p in preds):
            page.append(candidate)
            if len(page) == limit:
                return page, _next_link(call, limit, page[-1].id)
    return page, []


def server_order(server: Server) -> tuple[datetime, str]:
    return (server.created, server.id)


def _limit(call: Call) -> int:
    raw = call.request.query.get("limit")
    if raw is None:
        return call.surface.default_page
    try:
        limit = int(raw)
    except ValueError:
        raise fail(call.surface, 400, "limit param must be an integer") from None
    if limit < 0:
        raise fail(call.surface, 400, "limit param must be positive")
    return min(limit or MAX_PAGE, MAX_PAGE)


def paginate(
    call: Call,
    items: list[T],
    *,
    item_id: Callable[[T], str],
    marker_position: Callable[[str], int | None],
    collection: str,
) -> tuple[list[T], list[dict[str, str]]]:
    """One page of `items` after the marker, and the `next` link if the page is full.

    `marker_position(marker)` is the index in `items` where the page starts, or None if the
    marker names nothing of this surface (400, as Nova's "marker not found").
    """
    limit = _limit(call)
    marker = call.request.query.get("marker")
    start = 0
    if marker is not None:
        position = marker_position(marker)
        if position is None:
            raise fail(call.surface, 400, f"marker [{marker}] not found")
        start = position
    page = items[start : start + limit]
    if not page or len(page) < limit:
        return page, []
    return page, _next_link(call, limit, item_id(page[-1]))


def _next_link(call: Call, limit: int, last_id: str) -> list[dict[str, str]]:
    """The `next` link of a full page: the same query, the last id as marker."""
    params = [(k, v) for k, v in call.request.query.items() if k not in ("marker", "limit")]
    params += [("limit", str(limit)), ("marker", last_id)]
    href = f"{call.base}{call.request.path}?{urlencode(params)}"
    return [{"rel": "next", "href": href}]
