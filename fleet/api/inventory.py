"""`/v1/endpoints` (configured endpoints with their live limiter state) and `/v1/servers`
(inventory read through the drivers, filtered with the same selector as operation targets).

Listing servers goes through each endpoint's driver, so it spends the endpoint's list budget like
any other call: the limiter, not the API, decides how fast it may go. Paging is by position in
the combined listing (endpoints in name order); each page lists again, so a page boundary may
shift when servers appear or vanish between two calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from fleet.api.context import fleet_of, json_response, read_query
from fleet.api.errors import Problem, field_problem
from fleet.api.schemas import (
    BudgetOut,
    EndpointList,
    EndpointOut,
    FlavorList,
    FlavorOut,
    RateKeyOut,
    ServerOut,
    ServerPage,
    ServersQuery,
)
from fleet.api.views import server_out
from fleet.drivers.errors import DriverError
from fleet.engine.opspec import SpecError, parse_targets
from fleet.service import Fleet
from jobs.ratelimit import KeyState
from jobs.types import JSONObject


def rate_key_out(state: KeyState, now: float) -> RateKeyOut:
    api_class = state.key.split(":", 1)[-1]
    blocked = None if state.penalty_until is None else round(state.penalty_until - now, 3)
    return RateKeyOut(
        rate_key=state.key,
        api_class=api_class,
        budgets=[
            BudgetOut(limit=b.limit, period=b.period, unit=b.unit.value) for b in state.budgets
        ],
        used={unit.value: n for unit, n in state.used.items()},
        queued=state.queued,
        throttled=state.throttled,
        waits=state.waits,
        blocked_seconds=blocked if blocked is None or blocked > 0 else None,
    )


def endpoints_out(fleet: Fleet) -> EndpointList:
    now = fleet.operations.clock.monotonic()
    keys = fleet.limiter.keys()
    items = []
    for spec in fleet.settings.endpoints:
        mine = [k for k in keys if k.startswith(f"{spec.name}:")]
        items.append(
            EndpointOut(
                name=spec.name,
                provider=spec.provider.value,
                flavour=spec.variant,
                simulator=spec.simulator,
                max_servers=spec.max_servers,
                max_percent=spec.max_percent,
                rate_keys=[rate_key_out(fleet.limiter.state(k), now) for k in mine],
            )
        )
    return EndpointList(items=items)


async def list_endpoints(request: web.Request) -> web.Response:
    return json_response(endpoints_out(fleet_of(request)))


_QUERY_FIELDS = {
    "selector.endpoints": "endpoint",
    "selector.ids": "id",
    "selector.tags_all": "tag",
    "selector.tags_any": "tag_any",
    "selector.tags_none": "tag_none",
    "selector.name": "name",
    "selector.statuses": "status",
}


def _pairs(values: list[str], name: str, *, bare_ok: bool) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for i, text in enumerate(values):
        key, sep, value = text.partition("=")
        if not key or (not sep and not bare_ok):
            raise field_problem(f"{name}[{i}]", f"{text!r} is not key=value")
        out.append((key, value if sep else None))
    return out


def selector_from_query(q: ServersQuery) -> JSONObject:
    tags_any: dict[str, list[str]] = {}
    for key, value in _pairs(q.tag_any, "tag_any", bare_ok=True):
        tags_any.setdefault(key, []).extend([] if value is None else [value])
    tags_none: dict[str, list[str]] = {}
    for key, value in _pairs(q.tag_none, "tag_none", bare_ok=True):
        tags_none.setdefault(key, []).extend([] if value is None else [value])
    out: JSONObject = {
        "endpoints": list(q.endpoint),
        "ids": list(q.id),
        "tags_all": {k: v or "" for k, v in _pairs(q.tag, "tag", bare_ok=False)},
        "tags_any": {k: list(v) for k, v in tags_any.items()},
        "tags_none": {k: list(v) for k, v in tags_none.items()},
        "statuses": [s.value for s in q.status],
        "exclude_tag": None,
    }
    if q.name is not None:
        out["name"] = q.name
    return out


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit() or len(cursor) > 9:
        raise field_problem("cursor", "not a cursor this server returned")
    return int(cursor)


async def list_servers(request: web.Request) -> web.Response:
    fleet = fleet_of(request)
    q = read_query(request, ServersQuery)
    names = sorted(fleet.drivers)
    for i, name in enumerate(q.endpoint):
        if name not in fleet.drivers:
            raise field_problem(f"endpoint[{i}]", f"unknown endpoint {name!r}")
    try:
        targets = parse_targets(selector_from_query(q))
    except SpecError as exc:
        head, _, rest = exc.field.partition("[")
        field = _QUERY_FIELDS.get(head, head) + (f"[{rest}" if rest else "")
        raise field_problem(field, exc.message) from None
    offset = _offset(q.cursor)
    items: list[ServerOut] = []
    position, more = 0, False
    for name in targets.endpoints or tuple(names):
        stream = fleet.drivers[name].list_servers(targets.selector)
        try:
            async for server in stream:
                position += 1
                if position <= offset:
                    continue
                if len(items) == q.limit:
                    more = True
                    break
                items.append(server_out(server))
        except DriverError as exc:
            raise Problem(502, f"endpoint {name}: {exc.message}") from None
        finally:
            await _close(stream)
        if more:
            break
    next_cursor = str(offset + len(items)) if more else None
    return json_response(ServerPage(items=items, next_cursor=next_cursor))


async def _close(stream: AsyncIterator[object]) -> None:
    """Close a driver's listing we stopped early, so its HTTP response is released now."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def list_flavors(request: web.Request) -> web.Response:
    """The flavors a resize on one endpoint may name, by id or by name (read through its driver,
    cached a few minutes)."""
    fleet = fleet_of(request)
    name = request.match_info["endpoint"]
    driver = fleet.drivers.get(name)
    if driver is None:
        raise Problem(404, f"no endpoint {name!r}")
    try:
        table = await driver.flavor_table()
    except DriverError as exc:
        raise Problem(502, f"{name}: {exc}") from None
    items = [FlavorOut(id=i, name=n) for i, n in sorted(table.items(), key=lambda f: f[1])]
    return json_response(FlavorList(endpoint=name, items=items))
