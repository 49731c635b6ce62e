"""The planning loop: resolve an operation's targets into sub-jobs, streamed and in bulk.

Planning never materialises the target list: items flow from the planner into chunks of Core
inserts, and only counters are kept (`jobs.plan.PlanBuilder`). The planner runs in a task of its
own, and whatever it has produced is written whenever it waits for a cloud's answer, so the rows
of one endpoint or page are in the database while the next one is listed. The rows are invisible to dispatch
until `finish_planning` stamps the operation planned, so a refusal (blast radius) deletes them in
the same transaction that records the reason: the operation is refused atomically. A crash in
the middle leaves an unplanned operation whose partial rows the next attempt deletes first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog

from jobs.clock import Clock
from jobs.config import EngineConfig
from jobs.errors import Conflict, PlanningError
from jobs.plan import EtaInputs, PlanBuilder
from jobs.ports import (
    Executor,
    FleetSize,
    JobStore,
    NewSubJob,
    PlanEntry,
    PlanItem,
    Planner,
    RateLimiter,
)
from jobs.ratelimit import Budget
from jobs.records import OperationRecord
from jobs.waiting import WaitNotes, WaitObserver, no_observer

log = structlog.get_logger("jobs.planning")


class PlanningLoop:
    def __init__(
        self,
        store: JobStore,
        planner: Planner,
        executor: Executor,
        limiter: RateLimiter,
        clock: Clock,
        config: EngineConfig,
        notify: Callable[[], None] | None = None,
        observe: WaitObserver = no_observer,
    ) -> None:
        self.store = store
        self.planner = planner
        self.executor = executor
        self.limiter = limiter
        self.clock = clock
        self.config = config
        self.notify = notify
        self.observe = observe
        self.waiting = WaitNotes(clock)  # what each operation's planning waits on (jobs.waiting)

    async def run_once(self) -> int:
        """Plan one operation, if one is waiting. Returns 1 if it did, else 0."""
        op = await self.claim()
        if op is None:
            return 0
        await self.plan(op)
        return 1

    async def claim(self) -> OperationRecord | None:
        """Take the next operation to plan (its planning lease), if one is waiting."""
        now = self.clock.now()
        return await self.store.claim_planning(
            self.config.worker, now, now + timedelta(seconds=self.config.lease_ttl)
        )

    async def plan(self, op: OperationRecord) -> None:
        """Plan a claimed operation to the end: planned, refused or postponed (never raises but
        for cancellation)."""
        bound = log.bind(operation_id=op.id, kind=op.kind)
        self.waiting.drop(op.id)  # a postponement is over: this attempt tells its own waits
        try:
            await self._plan(op)
            self.waiting.drop(op.id)
        except PlanningError as exc:
            self.waiting.drop(op.id)
            await self._refuse(op, f"planning refused: {exc}")
            bound.info("operation_refused", reason=str(exc))
        except Conflict as exc:  # lost the planning lease: another worker owns it now
            self.waiting.drop(op.id)
            bound.warning("planning_lease_lost", error=str(exc))
        except Exception as exc:  # a transient planner failure (the cloud's list API, ...)
            await self._transient(op, exc)
        if self.notify is not None:
            self.notify()

    async def _transient(self, op: OperationRecord, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        bound = log.bind(operation_id=op.id)
        if op.plan_attempts >= self.config.plan_retries:
            self.waiting.drop(op.id)
            await self._refuse(op, f"planning failed after {op.plan_attempts} attempts: {error}")
            bound.warning("operation_refused", reason=error)
            return
        now = self.clock.now()
        delay = self.config.plan_retry_delay * op.plan_attempts
        until = now + timedelta(seconds=delay)
        self.waiting.postponed(
            op.id,
            f"planning attempt {op.plan_attempts} of {self.config.plan_retries} failed ({error});"
            f" the next one starts in {delay:g} s",
            until,
        )
        await self.store.postpone_planning(op.id, error, until, self.config.worker, now)
        bound.warning("planning_postponed", error=error, retry_in=delay)

    async def _refuse(self, op: OperationRecord, reason: str) -> None:
        await self.store.refuse_planning(op.id, reason, None, self.config.worker, self.clock.now())

    def _budgets(self, key: str) -> Sequence[Budget]:
        return self.limiter.state(key).budgets

    async def _plan(self, op: OperationRecord) -> None:
        builder = PlanBuilder()
        guard = op.guard
        early: str | None = None
        chunk: list[NewSubJob] = []
        queue: asyncio.Queue[PlanEntry | _Failed | None] = asyncio.Queue(
            maxsize=max(1, self.config.plan_chunk)
        )
        with self.observe(self.waiting.listener(op.id)):  # the pump's calls tell their waits
            pump = asyncio.create_task(_pump(self.planner.plan(op), queue), name=f"plan:{op.id}")
        try:
            while True:
                if chunk and queue.empty():
                    # the planner waits for a cloud's answer: write what we have meanwhile
                    await self._flush(op, chunk)
                    chunk = []
                entry = await queue.get()
                if entry is None:
                    break
                if isinstance(entry, _Failed):
                    raise entry.error
                row = self._take(builder, entry)
                if row is not None:
                    chunk.append(row)
                if guard and guard.max_servers is not None and builder.acting > guard.max_servers:
                    early = f"blast radius: more than max_servers {guard.max_servers} servers"
                    break
                if len(chunk) >= self.config.plan_chunk:
                    await self._flush(op, chunk)
                    chunk = []
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        eta = EtaInputs(
            profile=self.executor.profile(op.kind),
            profile_for=lambda key: self.executor.profile(op.kind, key),
            strategy=op.strategy,
            poll_interval=self.config.poll_interval,
            budgets=self._budgets,
        )
        refusal = early or builder.refusal(guard)
        summary = builder.summary(eta, refused_reason=refusal)
        now = self.clock.now()
        if refusal is not None:
            await self.store.refuse_planning(op.id, refusal, summary, self.config.worker, now)
            log.info("operation_refused", operation_id=op.id, reason=refusal)
            return
        await self._flush(op, chunk)
        rules = op.approval_rules
        approval = None if rules is None else rules.needed(*builder.scopes)
        worker = self.config.worker
        if await self.store.finish_planning(op.id, summary, worker, self.clock.now(), approval):
            log.info(
                "operation_planned",
                operation_id=op.id,
                targets=summary.targets,
                skipped=summary.skipped,
                eta_seconds=summary.eta_seconds,
                approval=approval,
            )

    @staticmethod
    def _take(builder: PlanBuilder, entry: PlanEntry) -> NewSubJob | None:
        if isinstance(entry, FleetSize):
            builder.fleet(entry)
            return None
        if not entry.target_id or not entry.rate_key:
            raise PlanningError(f"a planned item needs a target_id and a rate_key: {entry!r}")
        for name, value, limit in _limits(entry):
            if len(value) > limit:
                raise PlanningError(f"{name} longer than {limit} characters: {value[:80]!r}...")
        return builder.add(entry)

    async def _flush(self, op: OperationRecord, rows: list[NewSubJob]) -> None:
        if rows:
            now = self.clock.now()
            until = now + timedelta(seconds=self.config.lease_ttl)
            await self.store.insert_subjobs(op, rows, self.config.worker, now, until)
            await asyncio.sleep(0)  # let the other loops in


def _limits(item: PlanItem) -> tuple[tuple[str, str, int], ...]:
    """Column sizes (see `jobs.store.models`): refused here with a clear reason, not by the database."""
    return (
        ("target_id", item.target_id, 255),
        ("rate_key", item.rate_key, 255),
        ("batch_key", item.batch_key, 700),  # the column holds 1024: room for split suffixes
        ("skip_reason", item.skip_reason or "", 10_000),
    )


@dataclass(frozen=True)
class _Failed:
    error: Exception


async def _pump(
    stream: AsyncIterator[PlanEntry], queue: asyncio.Queue[PlanEntry | _Failed | None]
) -> None:
    """Drive the planner in its own task, so rows are written while it waits for a cloud (the
    consumer flushes whenever the queue runs dry); `None` marks the end."""
    try:
        async for entry in stream:
            await queue.put(entry)
    except Exception as exc:  # raised in the planning loop, as if it had iterated itself
        await queue.put(_Failed(exc))
        return
    finally:
        await _close(stream)
    await queue.put(None)


async def _close(stream: AsyncIterator[PlanEntry]) -> None:
    """Close an async generator we stopped early (so the planner's cleanup runs)."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(RuntimeError):
            await aclose()
