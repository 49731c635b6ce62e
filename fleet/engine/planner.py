"""Planning: an operation's selector -> one plan item per server, through the drivers.

Each configured endpoint (or only those the selector names) is listed once, in full; the selector
is applied here, so the same listing also gives the endpoint's fleet size for the blast-radius
guard. What an action means on each dialect is read from its driver's declarations
(`fleet.drivers.actions`): a server is skipped (recorded, never sent) when it carries the
exclusion tag, is already where the action leads (or in a status the action declares pointless),
or sits on a dialect that does not offer the action and that the selector does not name. An
action an endpoint the selector names cannot do refuses the whole operation (admission refuses it
before; this is the last line).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace

from fleet.domain import Action, ActionParams, Selector, ServerRef
from fleet.drivers.actions import Capabilities, Recipe
from fleet.drivers.base import Driver, resolve_flavor
from fleet.drivers.errors import DriverError, Unsupported
from fleet.engine.opspec import SpecError, Targets, parse_params, parse_targets
from fleet.engine.templates import planned_name
from jobs.errors import PlanningError
from jobs.ports import FleetSize, PlanEntry, PlanItem
from jobs.records import OperationRecord

PREFETCH = 5000
YIELD_EVERY = 100
"""Servers looked at between two turns of the event loop: a page of 1,000 servers took 0.1-0.4 s
of one step on a loaded machine, and every API request waited for it."""
"""Entries an endpoint's listing may run ahead of planning (bounded memory, any fleet size)."""


class _End:
    pass


_END = _End()
_Fed = PlanEntry | Exception | _End


async def _drain(queue: asyncio.Queue[_Fed], feeders: int) -> AsyncIterator[PlanEntry]:
    """The entries of `queue` until `feeders` endpoints have ended; a listing's error is raised
    as soon as it arrives."""
    while feeders:
        fed = await queue.get()
        if isinstance(fed, _End):
            feeders -= 1
        elif isinstance(fed, Exception):
            raise fed
        else:
            yield fed


def rate_key(endpoint: str, driver: Driver, action: Action) -> str:
    return f"{endpoint}:{driver.capabilities.actions[action].api_class}"


def batch_key(endpoint: str, recipe: str, step: int) -> str:
    return f"{endpoint}:{recipe}:{step}"


def skip_reason(
    caps: Capabilities,
    kind: str,
    server: ServerRef,
    params: ActionParams,
    exclude: tuple[str, str] | None,
) -> str | None:
    """Why `server` needs no call (None: act on it), as its dialect declares."""
    if exclude is not None and server.tags.get(exclude[0]) == exclude[1]:
        return "excluded"
    return caps.skip_reason(kind, server, params)


def unsupported_reason(caps: Capabilities, kind: str) -> str | None:
    """Why the dialect does not offer `kind` at all (None: it does)."""
    try:
        caps.offer(kind)
    except Unsupported as exc:
        return exc.message
    return None


class FleetPlanner:
    """Implements `jobs.ports.Planner` over the configured drivers."""

    def __init__(self, drivers: Mapping[str, Driver]) -> None:
        self._drivers = drivers

    def _targets(self, operation: OperationRecord) -> tuple[Targets, ActionParams]:
        try:
            targets = parse_targets(operation.selector)
            params = parse_params(operation.kind, operation.params)
        except SpecError as exc:
            raise PlanningError(str(exc)) from None
        unknown = [e for e in targets.endpoints if e not in self._drivers]
        if unknown:
            raise PlanningError(f"selector.endpoints: unknown endpoint {unknown[0]!r}")
        return targets, params

    @staticmethod
    def _recipe(
        driver: Driver, kind: str, params: ActionParams, server: ServerRef | None
    ) -> Recipe:
        recipe = driver.capabilities.recipe_for(
            kind, params, None if server is None else server.status
        )
        for step in recipe.steps:
            driver.check(step.action, params)
        return recipe

    @staticmethod
    async def _flavor_here(driver: Driver, params: ActionParams) -> ActionParams:
        """`params` with the flavor as this endpoint's id (a request may name it by id or by
        name; the driver sends the id, and "already flavor X" compares ids). A flavor list
        that cannot be read leaves it as given: the cloud then decides."""
        if params.flavor is None:
            return params
        try:
            table = await driver.flavor_table()
        except DriverError:
            return params
        found = resolve_flavor(table, params.flavor)
        return params if found is None else replace(params, flavor=found)

    async def plan(self, operation: OperationRecord) -> AsyncIterator[PlanEntry]:
        """Every endpoint is listed at once (each within its own list budget; one after another
        made planning take the sum of the listings instead of the longest, 1.1 s of the mixed
        benchmark). With waves, the entries come out endpoint after endpoint in the selector's
        order (else by name), so sequence numbers, and with them the waves, do not depend on
        which cloud answers first. Without waves the order across endpoints means nothing (each
        endpoint's servers keep their listing order, and each rate key is dispatched on its
        own), so entries come out as the clouds answer and are written while the slowest one is
        still listing."""
        targets, params = self._targets(operation)
        names = targets.endpoints or tuple(sorted(self._drivers))
        if len(names) == 1:
            async for entry in self._plan_endpoint(names[0], operation.kind, targets, params):
                yield entry
            return
        ordered = bool(operation.strategy.waves)
        shared = asyncio.Queue[_Fed](maxsize=PREFETCH)
        queues = {
            name: asyncio.Queue[_Fed](maxsize=PREFETCH) if ordered else shared for name in names
        }
        feeders = [
            asyncio.create_task(
                self._feed(self._plan_endpoint(name, operation.kind, targets, params), queue),
                name=f"plan-list:{name}",
            )
            for name, queue in queues.items()
        ]
        try:
            if ordered:
                for name in names:
                    async for entry in _drain(queues[name], 1):
                        yield entry
            else:
                async for entry in _drain(shared, len(names)):
                    yield entry
        finally:
            for feeder in feeders:
                feeder.cancel()
            await asyncio.gather(*feeders, return_exceptions=True)

    @staticmethod
    async def _feed(entries: AsyncIterator[PlanEntry], queue: asyncio.Queue[_Fed]) -> None:
        """List one endpoint ahead of the consumer, at most `PREFETCH` entries ahead (its own
        queue, or the one all endpoints share when order does not matter)."""
        try:
            async for entry in entries:
                await queue.put(entry)
        except Exception as exc:  # handed to the consumer, raised in endpoint order
            await queue.put(exc)
            return
        await queue.put(_END)

    async def _plan_endpoint(
        self, name: str, kind: str, targets: Targets, params: ActionParams
    ) -> AsyncIterator[PlanEntry]:
        driver = self._drivers[name]
        unsupported = unsupported_reason(driver.capabilities, kind)
        if unsupported is not None and name in targets.endpoints:
            raise PlanningError(f"endpoint {name}: {unsupported}")
        if unsupported is None:
            try:  # a parameter the dialect cannot take (live on ECS) refuses the operation
                self._recipe(driver, kind, params, None)
            except Unsupported as exc:
                raise PlanningError(f"endpoint {name}: {exc.message}") from None
        skip_unsupported = None if unsupported is None else f"unsupported: {unsupported}"
        params = await self._flavor_here(driver, params)
        if unsupported is None and driver.capabilities.creates(kind):
            for entry in planned_servers(name, driver, kind, params):
                yield entry
            return
        fleet = 0
        try:
            async for server in driver.list_servers(Selector()):
                fleet += 1
                if fleet % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let the API and the other loops in
                if targets.selector.matches(server):
                    yield self._item(name, driver, kind, params, server, targets, skip_unsupported)
        except DriverError as exc:
            if isinstance(exc, Unsupported):
                raise PlanningError(f"endpoint {name}: {exc.message}") from None
            raise
        yield FleetSize(scope=name, servers=fleet)

    def _item(
        self,
        name: str,
        driver: Driver,
        kind: str,
        params: ActionParams,
        server: ServerRef,
        targets: Targets,
        unsupported: str | None,
    ) -> PlanItem:
        reason = unsupported or skip_reason(
            driver.capabilities, kind, server, params, targets.exclude_tag
        )
        recipe = self._recipe(driver, kind, params, server) if reason is None else None
        return PlanItem(
            target_id=f"{name}/{server.id}",
            rate_key=rate_key(name, driver, recipe.steps[0].action) if recipe else f"{name}:none",
            batch_key=batch_key(name, recipe.name if recipe else kind, 0),
            payload={
                "endpoint": name,
                "server_id": server.id,
                "name": server.name,
                "status": server.status.value,
                "flavor": server.flavor,
                "updated": server.updated,
                "recipe": recipe.name if recipe else kind,
                **({"to_flavor": params.flavor} if params.flavor else {}),
            },
            skip_reason=reason,
            scope=name,
        )


def planned_servers(name: str, driver: Driver, kind: str, params: ActionParams) -> list[PlanEntry]:
    """A kind that makes servers (a create): one target per server to create, numbered from 1
    (`slot`) and named from the template, instead of a listing; the scope's size is what is
    planned (a percentage of an existing fleet says nothing of a create: admission holds it to
    the create ceiling instead)."""
    create = params.create
    if create is None:
        raise PlanningError(f"endpoint {name}: {kind} needs its parameters")
    recipe = FleetPlanner._recipe(driver, kind, params, None)
    action = recipe.steps[0].action
    items: list[PlanEntry] = [
        PlanItem(
            target_id=f"{name}/{planned_name(create.name, n)}",
            rate_key=rate_key(name, driver, action),
            batch_key=batch_key(name, recipe.name, 0),
            payload={
                "endpoint": name,
                "server_id": "",
                "slot": n,
                "name": planned_name(create.name, n),
                "recipe": recipe.name,
                **({"to_flavor": params.flavor} if params.flavor else {}),
            },
            scope=name,
        )
        for n in range(1, create.count + 1)
    ]
    items.append(FleetSize(scope=name, servers=create.count))
    return items
