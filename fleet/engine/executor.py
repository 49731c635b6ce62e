"""The executor: the only place where driver calls and their errors become engine outcomes.

For a claimed batch it makes ONE driver call (every sub-job shares endpoint, recipe and step),
for sub-jobs awaiting a cloud job it polls that job ONCE, and for sub-jobs whose earlier send may
or may not have reached the cloud (`verify_first` after a crash) it reads the servers first and
re-sends only when the cloud shows no trace of the call. Multi-step actions advance through their
recipe, as the endpoint's driver declares it (`fleet.drivers.actions`). A failure of a step that leaves a server half-way (a Nova confirm, an ECS
resize of a server stopped for it), seen by a poll or as a refusal of the call, runs the recipe's
compensation step (revert, start again) before the sub-job is reported failed.

The three paths are `fleet.engine.submitting`, `fleet.engine.polling` and
`fleet.engine.verifying`; what a step's outcome leads to is `fleet.engine.calls`. This module
holds the port (`jobs.ports.Executor`), the action profile the planner and the ETA read, and the
log line of every sub-job's outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

import structlog

from fleet.domain import Action, ActionParams
from fleet.drivers.actions import Recipe, Step
from fleet.drivers.base import Driver
from fleet.drivers.errors import DriverError
from fleet.engine import polling, submitting, verifying
from fleet.engine.calls import Call, action_seconds, first_poll, server_id
from fleet.engine.planner import rate_key
from jobs.outcomes import Failed, Outcome
from jobs.ports import ActionProfile, StepProfile, SubJobOutcomes
from jobs.records import Batch, SubJobRecord

log = structlog.get_logger("fleet.executor")

# Servers of one poll group on a one-server-per-call endpoint: read together by one listing of what
# changed since the earliest of their calls was accepted.
LISTED_POLL_BATCH = 200


class FleetExecutor:
    """Implements `jobs.ports.Executor` over the configured drivers."""

    def __init__(
        self,
        drivers: Mapping[str, Driver],
        *,
        max_batch: int = 1000,
        action_seconds: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        self._drivers = drivers
        self._max_batch = max_batch
        self._action_seconds = action_seconds or {}  # endpoint -> action -> seconds

    def _seconds(self, endpoint: str, action: Action) -> float:
        """How long `action` takes on `endpoint` until the server settles: the endpoint's
        configured time, else what its driver declares."""
        own = self._action_seconds.get(endpoint, {})
        return action_seconds(own, self._drivers.get(endpoint), action)

    def _first_poll(self, endpoint: str, step: Step, params: ActionParams) -> float | None:
        """Seconds before the first poll of an accepted call on `endpoint` (`calls.first_poll`)."""
        own = self._action_seconds.get(endpoint, {})
        return first_poll(own, self._drivers.get(endpoint), step, params)

    async def cloud_clock(self, rate_key: str) -> datetime | None:
        """The latest `Date` the cloud behind `rate_key` answered with (see `CloudClock`); None
        when it cannot be read now (the send's record is then no evidence: `unknown`)."""
        driver = self._drivers.get(rate_key.split(":", 1)[0])
        if driver is None:
            return None
        try:
            return await driver.cloud_clock()
        except DriverError as exc:
            log.warning("cloud_clock_unread", rate_key=rate_key, error=str(exc))
            return None

    # --- profile -----------------------------------------------------------------------------

    def profile(self, kind: str, rate_key: str | None = None) -> ActionProfile:
        """Steps of `kind` with the batch size of the endpoint behind `rate_key` (without it, the
        longest recipe any endpoint declares for the kind: only the ETA's timing uses that).
        Each step names the rate key it is sent on (an ECS resize: `{endpoint}:resize` between
        a stop and a start on `{endpoint}:action`), whether it applies only to servers that were
        running, and whether it is a compensation, so that the plan counts calls per key."""
        endpoint = None if rate_key is None else rate_key.split(":", 1)[0]
        found = self._recipe_of(kind, endpoint)
        if found is None:
            return ActionProfile(steps=(StepProfile(self._max_batch, 0.0),), poll_batch=50)
        endpoint_used, recipe = found
        driver = self._drivers[endpoint_used]
        keyed = endpoint is not None and endpoint in self._drivers
        steps = tuple(
            StepProfile(
                min(self._max_batch, _max_batch(driver, s.action)) if keyed else self._max_batch,
                # a compensation (revert) is not on the way of a server that succeeds
                0.0 if s.on_failure_only else self._seconds(endpoint_used, s.action),
                rate_key=self._step_key(endpoint, driver, s.action) if keyed else None,
                only_if_running=s.only_if_running,
                on_failure_only=s.on_failure_only,
            )
            for s in recipe.steps
        )
        # An endpoint that takes one server per call (the Nova dialects) reads the status of a
        # whole poll group with one `changes-since` listing (`OpenStackDriver.poll`), so its
        # groups are larger; batch APIs (Huawei) poll one cloud job per call.
        per_server = keyed and all(s.max_batch == 1 for s in steps)
        return ActionProfile(steps=steps, poll_batch=LISTED_POLL_BATCH if per_server else 50)

    def _recipe_of(self, kind: str, endpoint: str | None) -> tuple[str, Recipe] | None:
        """The recipe `kind` follows on `endpoint` (an unknown endpoint or None: the longest any
        endpoint declares), with the endpoint whose declarations time it."""
        names = [endpoint] if endpoint is not None and endpoint in self._drivers else []
        names = names or sorted(self._drivers)
        found: list[tuple[str, Recipe]] = []
        for name in names:
            caps = self._drivers[name].capabilities
            if kind in caps.kinds():
                recipes = caps.offer(kind).recipes
                found.append((name, max(recipes, key=lambda r: len(r.steps))))
        if not found:
            return None
        return max(found, key=lambda f: len(f[1].steps))

    @staticmethod
    def _step_key(endpoint: str | None, driver: Driver | None, action: Action) -> str | None:
        """The rate key a step of `action` is sent on at `endpoint` (None: an unknown endpoint,
        or an action its dialect lacks: the plan counts the step on the target's own key)."""
        if endpoint is None or driver is None or action not in driver.capabilities.actions:
            return None
        return rate_key(endpoint, driver, action)

    # --- the Executor port: every line logged inside carries the operation, call and endpoint ---

    async def submit(self, batch: Batch) -> SubJobOutcomes:
        return await self._logged(batch, "submit", self._submit)

    async def poll(self, batch: Batch) -> SubJobOutcomes:
        return await self._logged(batch, "poll", self._poll)

    async def verify(self, batch: Batch) -> SubJobOutcomes:
        return await self._logged(batch, "verify", self._verify)

    async def _submit(self, batch: Batch) -> SubJobOutcomes:
        return await submitting.submit(self._call(batch), batch)

    async def _poll(self, batch: Batch) -> SubJobOutcomes:
        return await polling.poll(self._call(batch), batch)

    async def _verify(self, batch: Batch) -> SubJobOutcomes:
        return await verifying.verify(self._call(batch), batch)

    def _call(self, batch: Batch) -> Call:
        return Call.of(batch, self._drivers, self._action_seconds)

    async def _logged(
        self, batch: Batch, phase: str, run: Callable[[Batch], Awaitable[SubJobOutcomes]]
    ) -> SubJobOutcomes:
        endpoint = str(batch.subjobs[0].payload["endpoint"])
        with structlog.contextvars.bound_contextvars(
            operation_id=batch.operation_id,
            call_id=batch.call_id,
            endpoint=endpoint,
            step=batch.step,
        ):
            outcomes = await run(batch)
            for sj in batch.subjobs:
                _log_outcome(phase, sj, outcomes.get(sj.id))
        return outcomes


def _log_outcome(phase: str, sj: SubJobRecord, outcome: Outcome | None) -> None:
    """One line per sub-job (failures at warning, the rest at debug), with its ids."""
    ids = {"subjob_id": sj.id, "server_id": server_id(sj), "phase": phase}
    if isinstance(outcome, Failed):
        log.warning("subjob_failed", code=outcome.code, reason=outcome.reason, **ids)
    else:
        log.debug("subjob_outcome", outcome=type(outcome).__name__, **ids)


def _max_batch(driver: Driver, action: Action) -> int:
    try:
        return driver.max_batch(action)
    except DriverError:
        return 1
