"""The planning loop: resolve an operation's targets into sub-jobs, streamed and in bulk.

Planning never materialises the target list: items flow from the planner into chunks of Core
inserts, and only counters are kept (`jobs.plan.PlanBuilder`). The planner runs in a task of its
own, and whatever it has produced is written whenever it waits for a cloud's answer, so the rows
of one endpoint or page are in the database while the next one is listed. The rows are invisible to dispatch
until `finish_planning` stamps the operation planned, so a refusal (blast radius) deletes them in
the same transaction that records the reason: the operation is refused atomically. A crash in
the middle leaves an unplanned operation whose partial rows the next attempt deletes first.

An operation nothing can refuse or hold (`dispatches_while_planning`) is opened to dispatch by
its first full call's worth of rows instead, while the listing goes on; its rows are then kept
by every later attempt, which goes on from them (D101, `jobs.store.streaming`).
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
    PlanProgress,
    RateLimiter,
)
from jobs.ratelimit import Budget
from jobs.records import OperationRecord
from jobs.strategy import Percent
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
        streams = dispatches_while_planning(op) and (
            op.planned_at is not None  # opened already: every attempt goes on from its rows
            or await self.store.every_replica_streams(self.clock.now())  # a rolling upgrade
        )
        # taken up again: rows are shown a full call beyond what was shown (its targets)
        shown = -1 if op.planned_at is None else op.targets
        plan = _Attempt(PlanBuilder(), streams, self._batch(op), shown)
        if op.planned_at is not None:  # open to dispatch: go on from the rows kept (D101)
            async for rows in self.store.planned_rows(op.id):
                plan.builder.seed(rows)
        builder = plan.builder
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
                    await self._flush(op, chunk, plan)
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
                    await self._flush(op, chunk, plan)
                    chunk = []
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        await self._finish(op, plan, chunk, early)

    async def _finish(
        self, op: OperationRecord, plan: _Attempt, chunk: list[NewSubJob], early: str | None
    ) -> None:
        builder = plan.builder
        eta = EtaInputs(
            profile=self.executor.profile(op.kind),
            profile_for=lambda key: self.executor.profile(op.kind, key),
            strategy=op.strategy,
            poll_interval=self.config.poll_interval,
            budgets=self._budgets,
        )
        refusal = early or builder.refusal(op.guard)
        summary = builder.summary(eta, refused_reason=refusal)
        now = self.clock.now()
        if refusal is not None:
            await self.store.refuse_planning(op.id, refusal, summary, self.config.worker, now)
            log.info("operation_refused", operation_id=op.id, reason=refusal)
            return
        await self._flush(op, chunk, plan)
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

    def _batch(self, op: OperationRecord) -> Callable[[str], int]:
        """The servers the first call on a rate key carries at most (its first step's batch,
        within `max_in_flight`)."""
        mif = op.strategy.max_in_flight

        def first_call(key: str) -> int:
            steps = self.executor.profile(op.kind, key).steps
            size = max(1, steps[0].max_batch) if steps else 1
            return size if mif is None else max(1, min(size, mif))

        return first_call

    async def _flush(self, op: OperationRecord, rows: list[NewSubJob], plan: _Attempt) -> None:
        if not rows:
            return
        now = self.clock.now()
        until = now + timedelta(seconds=self.config.lease_ttl)
        progress = plan.progress()
        await self.store.insert_subjobs(op, rows, self.config.worker, now, until, progress)
        if progress is not None and self.notify is not None:
            self.notify()  # rows to dispatch now (D101)
        await asyncio.sleep(0)  # let the other loops in


def dispatches_while_planning(op: OperationRecord) -> bool:
    """Whether the operation is opened to dispatch from its first rows on, while the listing
    goes on (D101): only when nothing can refuse or hold it once its rows are planned (no guard
    with a limit, no approval rule, not a dry run), and when no count of the whole plan decides
    what may be sent (no waves, no error budget in percent)."""
    guard = op.guard
    limited = guard is not None and (guard.max_servers is not None or guard.max_percent is not None)
    return not (
        op.dry_run
        or limited
        or op.approval_rules is not None
        or op.strategy.waves
        or isinstance(op.strategy.max_errors, Percent)
    )


@dataclass
class _Attempt:
    """One planning attempt: what it has planned, and whether its rows open the operation.

    Rows are shown to dispatch (`PlanProgress.targets`: those numbered below it) a full call's
    worth at a time: a call sent with the few rows of a half-read page takes its share of the
    window's budget, and a sliding window gives that share back as it was taken, so every later
    window would be split the same way (a Huawei ECS call carries 1,000 servers).

    The last row written is never shown until the listing ends: while it is open, one written
    row is always pending and unshown, so a process of an earlier release (which finishes an
    operation when none of its rows is active, and knows nothing of open listings: an API
    process in a rolling upgrade, a rollback) cannot finish it while servers are still to be
    listed."""

    builder: PlanBuilder
    streams: bool
    batch: Callable[[str], int]
    shown: int = -1  # targets shown to dispatch; -1: the operation is not open yet

    def progress(self) -> PlanProgress | None:
        if not self.streams:
            return None
        b = self.builder
        full = max((self.batch(k) for k in b.rate_keys), default=1)
        show = b.acting - 1  # the last row written stays unshown (see above)
        if show - max(0, self.shown) < full:
            return None
        self.shown = show
        return PlanProgress(targets=show, skipped=b.skipped, rate_keys=b.rate_keys)


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
