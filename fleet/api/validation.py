"""A create-operation request -> `NewOperation`, checked completely before anything is written.

Shape is pydantic's job (`CreateOperationIn`); meaning is checked here with the very parsers the
planner and the engine use later (`parse_targets`, `parse_params`, `Strategy.from_json`,
`BlastRadius.from_json`), plus what only the service knows: which endpoints exist, what their
dialects can do, and (where a driver can list them) which flavors exist. Every failure is a 422
naming the field as the client wrote it (`targets.endpoints[1]`, `strategy.waves[0]`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import structlog

from fleet.api.errors import Problem, field_problem
from fleet.api.schemas import CreateOperationIn, GuardIn, TargetsIn
from fleet.domain import Action, ActionParams
from fleet.drivers.base import Driver
from fleet.drivers.errors import DriverError, Unsupported
from fleet.opspec import SpecError, parse_params, parse_targets
from fleet.recipes import recipe_for
from fleet.service import Fleet
from fleet.settings import configured_guard
from jobs.errors import InvalidSpec
from jobs.records import NewOperation
from jobs.strategy import BlastRadius, Strategy, stricter
from jobs.types import JSONObject, JSONValue

TAG_KINDS = ("tag_add", "tag_remove")
_CRITERIA = ("endpoints", "ids", "tags_all", "tags_any", "tags_none", "name", "statuses")
MAX_IDEMPOTENCY_KEY = 255
# Seconds the API waits for the targeted endpoints' flavor lists (fetched concurrently, cached
# per driver): past it an endpoint counts as "cannot tell" and the request goes on.
FLAVOR_CHECK_TIMEOUT = 5.0

log = structlog.get_logger("fleet.api")


@runtime_checkable
class FlavorCatalog(Protocol):
    """A driver that can list its flavors lets the API refuse an unknown flavor up front."""

    async def flavors(self) -> frozenset[str]: ...


def _renamed(exc: SpecError | InvalidSpec, prefix: str, old: str = "") -> Problem:
    field = exc.field
    if old and field.startswith(old):
        field = prefix + field[len(old) :]
    elif not old:
        field = f"{prefix}{field}"
    message = exc.message if isinstance(exc, SpecError) else str(exc).split(": ", 1)[-1]
    return field_problem(field, message)


def selector_json(targets: TargetsIn) -> JSONObject:
    """Only what the client gave (so `exclude_tag` absent keeps the default, null disables it)."""
    dumped = targets.model_dump(mode="json")
    out: JSONObject = {}
    for name in targets.model_fields_set:
        value: JSONValue = dumped[name]
        if name == "exclude_tag" or value not in ([], {}, None):
            out[name] = value
    return out


def check_targets(targets: TargetsIn, endpoints: Sequence[str]) -> JSONObject:
    if not any(getattr(targets, name) not in ([], {}, None) for name in _CRITERIA):
        raise field_problem(
            "targets", f"give at least one criterion: {', '.join(_CRITERIA)} (an empty set)"
        )
    if "ids" in targets.model_fields_set and not targets.ids:
        raise field_problem("targets.ids", "must not be empty when given")
    for i, name in enumerate(targets.endpoints):
        if name not in endpoints:
            raise field_problem(
                f"targets.endpoints[{i}]",
                f"unknown endpoint {name!r}; configured: {', '.join(endpoints) or 'none'}",
            )
    selector = selector_json(targets)
    try:
        parse_targets(selector)
    except SpecError as exc:
        raise _renamed(exc, "targets", "selector") from None
    return selector


def params_json(body: CreateOperationIn) -> tuple[JSONObject, ActionParams]:
    raw: JSONObject = body.params.model_dump(mode="json", exclude_none=True)
    try:
        return raw, parse_params(body.action, raw)
    except SpecError as exc:
        raise _renamed(exc, "params", "params") from None


def strategy_of(body: CreateOperationIn) -> Strategy:
    try:
        return Strategy.from_json(body.strategy.model_dump(mode="json"))
    except InvalidSpec as exc:
        raise _renamed(exc, "strategy.") from None


def guard_of(guard: GuardIn | None, fleet: Fleet, endpoints: Sequence[str]) -> BlastRadius | None:
    """The guard the operation runs under: the configured limits of the targeted endpoints are a
    ceiling set by an admin, so a request's guard can only tighten them, never loosen or drop them
    (`{}` or `{"max_servers": 100000}` leave the configured limits in force)."""
    configured = configured_guard(fleet.settings, endpoints)
    if guard is None:
        return configured
    try:
        requested = BlastRadius.from_json(guard.model_dump(mode="json"))
    except InvalidSpec as exc:
        raise _renamed(exc, "guard.") from None
    return stricter(requested, configured)


def check_capabilities(fleet: Fleet, kind: str, params: ActionParams, named: Sequence[str]) -> None:
    """An action a named endpoint's dialect cannot do is refused now, not after planning."""
    if kind in TAG_KINDS:
        return  # servers of a dialect without tags are skipped with that reason instead
    flavours = {s.name: s.flavour for s in fleet.settings.endpoints}
    for i, name in enumerate(named):
        driver = fleet.drivers[name]
        recipe = recipe_for(kind, driver.provider, flavour=flavours.get(name, "openstack"))
        try:
            for step in recipe.steps:
                driver.check(step.action, params)
        except Unsupported as exc:
            raise field_problem(f"targets.endpoints[{i}]", f"{name}: {exc.message}") from None


async def _flavors_of(driver: FlavorCatalog, name: str, seconds: float) -> frozenset[str] | None:
    """The endpoint's flavors, or None when it cannot tell within `seconds` (cloud down)."""
    try:
        async with asyncio.timeout(seconds):
            return await driver.flavors()
    except (DriverError, TimeoutError) as exc:
        log.warning("flavor_list_unavailable", endpoint=name, error=str(exc) or type(exc).__name__)
        return None


async def check_flavor(
    params: ActionParams,
    drivers: Mapping[str, Driver],
    named: Sequence[str],
    *,
    seconds: float | None = None,
) -> None:
    """Refuse a resize to a flavor the targeted endpoints do not list, naming `params.flavor`.

    Only endpoints whose dialect can resize (and whose driver lists flavors) are asked, all at
    once, each through its cached `flavors()`:

    - endpoints named in `targets.endpoints`: each must list the flavor (the servers there will be
      sent it as `flavorRef`);
    - no endpoint named: the flavor must be listed by at least one configured endpoint that can
      resize. Flavor ids are per cloud, so requiring all of them would refuse every resize of a
      mixed fleet whose selector (ids, a name pattern) only reaches one cloud.

    A flavor list that cannot be fetched (cloud down, an error answer, no answer within `seconds`,
    by default `FLAVOR_CHECK_TIMEOUT`) does not block the request: that endpoint counts as "cannot
    tell" (logged) and planning and the cloud decide (a flavor the cloud does not know fails the
    sub-job with the cloud's own reason). So with no endpoint named, an unknown flavor is refused
    only when every resize-capable endpoint answered.
    """
    if params.flavor is None:
        return
    candidates = list(named) or list(drivers)
    asked: dict[str, FlavorCatalog] = {}
    for name in candidates:
        driver = drivers[name]
        if Action.RESIZE in driver.capabilities.supported and isinstance(driver, FlavorCatalog):
            asked[name] = driver
    if not asked:
        return
    wait = FLAVOR_CHECK_TIMEOUT if seconds is None else seconds
    lists = await asyncio.gather(*(_flavors_of(d, n, wait) for n, d in asked.items()))
    known = dict(zip(asked, lists, strict=True))
    flavor = params.flavor
    if named:
        for name, flavors in known.items():
            if flavors is not None and flavor not in flavors:
                raise field_problem("params.flavor", f"unknown flavor on {name}: {flavor!r}")
        return
    if any(flavors is None or flavor in flavors for flavors in known.values()):
        return
    raise field_problem(
        "params.flavor",
        f"unknown flavor {flavor!r}: no endpoint lists it (checked {', '.join(known)})",
    )


def idempotency_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not raw or len(raw) > MAX_IDEMPOTENCY_KEY or not raw.isprintable():
        raise field_problem(
            "Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters"
        )
    return raw


async def new_operation(
    body: CreateOperationIn, fleet: Fleet, created_by: str, key: str | None
) -> NewOperation:
    """Everything checked; nothing written."""
    names = list(fleet.drivers)
    selector = check_targets(body.targets, names)
    params_raw, params = params_json(body)
    targeted = list(body.targets.endpoints) or names
    check_capabilities(fleet, body.action, params, body.targets.endpoints)
    if body.action == "resize":
        await check_flavor(params, fleet.drivers, body.targets.endpoints)
    return NewOperation(
        kind=body.action,
        params=params_raw,
        selector=selector,
        strategy=strategy_of(body),
        guard=guard_of(body.guard, fleet, targeted),
        dry_run=body.dry_run,
        reason=body.reason,
        created_by=created_by,
        idempotency_key=key,
    )
