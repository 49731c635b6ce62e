"""Planning: an operation's selector -> one plan item per server, through the drivers.

Each configured endpoint (or only those the selector names) is listed once, in full; the selector
is applied here, so the same listing also gives the endpoint's fleet size for the blast-radius
guard. A server is skipped (recorded, never sent) when it carries the exclusion tag, is already in
the state the action leads to, or sits on a dialect without the API the action needs (tags on
EasyStack; a resize on BMS when the selector does not name the BMS endpoint). An action an
endpoint the selector names cannot do at all (a resize of `bms-prod`) refuses the whole operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from fleet.domain import Action, ActionParams, Selector, ServerRef, ServerStatus
from fleet.drivers.base import Driver
from fleet.drivers.config import Flavour
from fleet.drivers.errors import DriverError, Unsupported
from fleet.opspec import SpecError, Targets, parse_params, parse_targets
from fleet.recipes import Recipe, recipe_for
from jobs.errors import PlanningError
from jobs.ports import FleetSize, PlanEntry, PlanItem
from jobs.records import OperationRecord

TAG_KINDS = ("tag_add", "tag_remove")
PREFETCH = 5000
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
    kind: str, server: ServerRef, params: ActionParams, exclude: tuple[str, str] | None
) -> str | None:
    """Why `server` needs no call (None: act on it)."""
    if exclude is not None and server.tags.get(exclude[0]) == exclude[1]:
        return "excluded"
    if server.status is ServerStatus.DELETED:
        return "already deleted"
    if kind == "start" and server.status is ServerStatus.RUNNING:
        return "already running"
    if kind == "stop" and server.status is ServerStatus.STOPPED:
        return "already stopped"
    if kind == "reboot" and server.status is ServerStatus.STOPPED:
        return "not running (stopped)"
    if kind == "resize" and params.flavor is not None and server.flavor == params.flavor:
        return f"already flavor {params.flavor}"
    if kind == "tag_add" and all(server.tags.get(k) == v for k, v in params.tags.items()):
        return "already tagged"
    if kind == "tag_remove" and not any(
        k in server.tags and (not v or server.tags[k] == v) for k, v in params.tags.items()
    ):
        return "no such tags"
    return None


class FleetPlanner:
    """Implements `jobs.ports.Planner` over the configured drivers."""

    def __init__(self, drivers: Mapping[str, Driver], flavours: Mapping[str, str]) -> None:
        self._drivers = drivers
        self._flavours = flavours  # endpoint -> Flavour value (openstack endpoints)

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

    def _recipe(
        self, name: str, driver: Driver, kind: str, params: ActionParams, server: ServerRef | None
    ) -> Recipe:
        recipe = recipe_for(
            kind,
            driver.provider,
            flavour=self._flavours.get(name, Flavour.OPENSTACK),
            live=params.live,
            status=None if server is None else server.status,
        )
        for step in recipe.steps:
            driver.check(step.action, params)
        return recipe

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
        unsupported: str | None = None
        try:
            self._recipe(name, driver, kind, params, None)
        except Unsupported as exc:
            # The dialect has no API for it at all (tags on EasyStack, resize on BMS): skip its
            # servers, unless the selector names this endpoint. Anything else (a parameter the
            # dialect cannot take, e.g. live on ECS) refuses the operation.
            missing = any(
                s.action not in driver.capabilities.actions
                for s in recipe_for(kind, driver.provider).steps
            )
            if not missing or (kind not in TAG_KINDS and name in targets.endpoints):
                raise PlanningError(f"endpoint {name}: {exc.message}") from None
            unsupported = f"unsupported: {exc.message}"
        fleet = 0
        try:
            async for server in driver.list_servers(Selector()):
                fleet += 1
                if targets.selector.matches(server):
                    yield self._item(name, driver, kind, params, server, targets, unsupported)
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
        reason = unsupported or skip_reason(kind, server, params, targets.exclude_tag)
        recipe = self._recipe(name, driver, kind, params, server) if reason is None else None
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
            },
            skip_reason=reason,
            scope=name,
        )
