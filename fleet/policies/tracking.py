"""Tracking: what became of the servers operations stopped and started, after they finished.

The leader runs `Tracker.sweep` with every policy sweep. It has two parts:

1. **Follow** finished operations (`Operations.finished_after`, a watermark kept in
   `tracking_state`, so each is read once). A stop's succeeded servers open a stop span at the
   time the engine recorded the success; a start's (or a delete's) succeeded servers close their
   open spans then (`fleet`). Servers of a stop or start whose sub-job failed or ended unknown
   did not reach the state asked: drift `not_reached`.
2. **Check** the servers of open spans, at most every `check_interval`: one listing per endpoint.
   A server no longer stopped, that no unfinished fleet start is acting on, was started by someone
   else: the span ends at the cloud's record of the start (`instance_action`, from the server's
   action history, in the cloud's clock but never later than the read that found it running), or where the cloud keeps none, now (`status_read`: the first read showing it
   running; the span is then an upper bound, by at most `check_interval`). A server no longer
   listed ends the span now (`gone`). A span ended by someone else within `drift_window` of its
   stop is drift `left`.

Attribution is sound by order: the listing comes first, then the unfinished starts are read, then
finished operations are followed again, so a start by fleet seen in the listing is either still
unfinished (left for later) or already followed (its span closed as `fleet`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from fleet.domain import Selector, ServerRef, ServerStatus
from fleet.drivers.base import InstanceAction
from fleet.drivers.errors import DriverError
from fleet.policies.drift import DriftLog
from fleet.policies.model import Policy
from fleet.policies.store_tracking import NewDrift, Origin, StopSpan, TrackingStore
from jobs.records import OperationRecord, Page, SubJobRecord
from jobs.states import State

log = structlog.get_logger("fleet.policies.tracking")

DESIRED = {"stop": ServerStatus.STOPPED, "start": ServerStatus.RUNNING}
ENDS_A_STOP = ("start", "delete")
POWER_ON = frozenset({"start", "resume", "unshelve", "unpause"})  # history names that run it
PAGE = 500


class TrackedEndpoint(Protocol):
    """What tracking needs of a driver (every `fleet.drivers.base.Driver` is one)."""

    def list_servers(self, selector: Selector) -> AsyncIterator[ServerRef]: ...

    async def instance_actions(self, server_id: str) -> Sequence[InstanceAction] | None: ...


class OperationFeed(Protocol):
    """What tracking needs of the engine (`jobs.operations.Operations` is one)."""

    async def finished_after(
        self, after: tuple[datetime, str] | None = None, limit: int = 100
    ) -> list[OperationRecord]: ...

    async def unfinished(self, kinds: Sequence[str]) -> list[OperationRecord]: ...

    async def subjobs(
        self,
        operation_id: str,
        state: State | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[SubJobRecord]: ...


@dataclass(frozen=True)
class TrackingConfig:
    check_interval: timedelta = timedelta(minutes=5)
    drift_window: timedelta = timedelta(hours=12)


def _where(sj: SubJobRecord) -> tuple[str, str] | None:
    endpoint, server_id = sj.payload.get("endpoint"), sj.payload.get("server_id")
    if isinstance(endpoint, str) and isinstance(server_id, str):
        return endpoint, server_id
    return None


class Tracker:
    def __init__(
        self,
        store: TrackingStore,
        feed: OperationFeed,
        inventory: Mapping[str, TrackedEndpoint],
        drift: DriftLog,
        config: TrackingConfig | None = None,
    ) -> None:
        self.store = store
        self.feed = feed
        self.inventory = inventory
        self.drift = drift
        self.config = config or TrackingConfig()

    async def sweep(self, now: datetime, policies: Mapping[str, Policy] | None = None) -> None:
        """Follow, and check when it is time; `policies`: the loaded ones (for enforcing)."""
        if policies is not None and self.drift.enforcer is not None:
            self.drift.enforcer.policies = policies
        await self.follow()
        _, checked = await self.store.watermark()
        if checked is None or now - checked >= self.config.check_interval:
            await self.check(now)

    async def _subjobs(self, operation_id: str, state: State | None) -> AsyncIterator[SubJobRecord]:
        cursor: str | None = None
        while True:
            page = await self.feed.subjobs(operation_id, state, cursor, PAGE)
            for sj in page.items:
                yield sj
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # --- 1. follow ------------------------------------------------------------------------------

    async def follow(self) -> int:
        """Read every operation finished since the watermark; returns how many."""
        count = 0
        while True:
            mark, _ = await self.store.watermark()
            ops = await self.feed.finished_after(mark, PAGE)
            for op in ops:
                await self._operation(op)
                assert op.finished_at is not None
                await self.store.set_watermark(op.finished_at, op.id)
            count += len(ops)
            if len(ops) < PAGE:
                return count

    async def _operation(self, op: OperationRecord) -> None:
        desired = DESIRED.get(op.kind)
        if desired is None and op.kind not in ENDS_A_STOP:
            return
        origin = await self.store.origin_of(op.id)
        stops: list[tuple[str, str, str | None, datetime]] = []
        async for sj in self._subjobs(op.id, State.SUCCEEDED):
            where = _where(sj)
            if where is None:
                continue
            if op.kind == "stop":
                flavor = sj.payload.get("flavor")
                stops.append((*where, flavor if isinstance(flavor, str) else None, sj.updated_at))
            else:
                verb = "started" if op.kind == "start" else "deleted"
                await self.store.close_open(
                    *where, sj.updated_at, "fleet", f"{verb} by operation {op.id}"
                )
        await self.store.open_spans(origin, stops, op.planned_at or op.created_at)
        if desired is not None:
            await self._not_reached(op, origin, desired)

    async def _not_reached(
        self, op: OperationRecord, origin: Origin, desired: ServerStatus
    ) -> None:
        for state in (State.FAILED, State.UNKNOWN):
            async for sj in self._subjobs(op.id, state):
                where = _where(sj)
                if where is None:
                    continue
                why = sj.error_message or sj.reason or f"its sub-job ended {state.value}"
                await self.drift.record(
                    NewDrift(*where, origin, "not_reached", desired.value, state.value, why)
                )

    # --- 2. check -------------------------------------------------------------------------------

    async def check(self, now: datetime) -> None:
        """Read the servers of open spans; end the spans of those started by someone else."""
        spans = await self.store.unended()
        ids: dict[str, set[str]] = defaultdict(set)
        for span in spans:
            ids[span.endpoint].add(span.server_id)
        current, unread = await self._read(ids)
        busy = await self._starting()
        await self.follow()
        seen: list[int] = []
        for span in await self.store.unended():
            key = (span.endpoint, span.server_id)
            server = current.get(key)
            if span.endpoint in unread or key in busy:
                continue
            if server is None:
                await self.store.close_open(*key, now, "gone", "no longer listed")
            elif server.status is ServerStatus.STOPPED:
                seen.append(span.id)
            else:
                await self._started_by_others(span, server, now)
        await self.store.touch(seen, now)
        await self.store.set_checked(now)

    async def _read(
        self, ids: Mapping[str, set[str]]
    ) -> tuple[dict[tuple[str, str], ServerRef], set[str]]:
        """The servers now, and the endpoints that could not be read (tried again next time)."""
        out: dict[tuple[str, str], ServerRef] = {}
        unread: set[str] = set()
        for endpoint, server_ids in sorted(ids.items()):
            driver = self.inventory.get(endpoint)
            if driver is None:
                unread.add(endpoint)  # no longer configured: nothing can be said
                continue
            try:
                async for server in driver.list_servers(Selector(ids=frozenset(server_ids))):
                    out[(endpoint, server.id)] = server
            except DriverError as exc:
                log.warning("tracking_read_failed", endpoint=endpoint, error=str(exc))
                unread.add(endpoint)
        return out, unread

    async def _starting(self) -> set[tuple[str, str]]:
        """Servers an unfinished fleet start or delete may be acting on."""
        out: set[tuple[str, str]] = set()
        for op in await self.feed.unfinished(ENDS_A_STOP):
            async for sj in self._subjobs(op.id, None):
                where = _where(sj)
                if where is not None:
                    out.add(where)
        return out

    async def _started_by_others(self, span: StopSpan, server: ServerRef, now: datetime) -> None:
        at, source, detail = await self._when_started(span, server, now)
        closed = await self.store.close_open(span.endpoint, span.server_id, at, source, detail)
        for old in closed:
            if self.config.drift_window and at - old.stopped_at <= self.config.drift_window:
                await self.drift.record(
                    NewDrift(
                        old.endpoint, old.server_id, old.origin, "left",
                        ServerStatus.STOPPED.value, server.status.value, detail, changed_at=at,
                    )
                )  # fmt: skip

    async def _when_started(
        self, span: StopSpan, server: ServerRef, now: datetime
    ) -> tuple[datetime, str, str]:
        """When the server was started: the cloud's record, else this read (a bound)."""
        try:
            history = await self.inventory[span.endpoint].instance_actions(span.server_id)
        except DriverError as exc:
            log.warning("tracking_history_failed", server=span.server_id, error=str(exc))
            history = None
        starts = [
            r for r in history or () if r.action in POWER_ON and r.start_time >= span.stopped_at
        ]
        if starts:
            first = min(starts, key=lambda r: r.start_time)
            via = f" (request {first.request_id})" if first.request_id else ""
            when = first.start_time.isoformat()
            # the cloud's clock, never later than this read (it was running by then)
            at = min(first.start_time, now)
            return at, "instance_action", f"{first.action} at {when} in the cloud's clock{via}"
        last = (span.checked_at or span.stopped_at).isoformat()
        status = server.status.value
        detail = f"read {status} at {now.isoformat()}, last read stopped at {last}"
        return now, "status_read", detail
