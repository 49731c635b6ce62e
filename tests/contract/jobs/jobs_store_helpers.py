"""Helpers for the job-store contract tests (imported by the test modules next to it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from jobs.clock import FakeClock
from jobs.config import EngineConfig
from jobs.loops.dispatch import Dispatcher
from jobs.loops.planning import PlanningLoop
from jobs.loops.polling import Poller
from jobs.operations import Operations
from jobs.plan import EtaInputs, PlanBuilder
from jobs.ports import ActionProfile, PlanEntry, PlanItem, StepProfile
from jobs.records import Batch, ClaimRequest, NewOperation, OperationRecord, OperationView
from jobs.retry import RetryPolicy
from jobs.store import SqlJobStore
from jobs.strategy import Strategy
from jobs.testing import FakeExecutor, FakePlanner, FakeRateLimiter

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=60)
WORKER = "worker-a"


def claim_request(
    op_id: str,
    *,
    cap: int = 100,
    seq_end: int = 10**9,
    now: datetime = T0,
    key: str = "cloud:action",
    worker: str = WORKER,
) -> ClaimRequest:
    """A claim of `op_id`'s rows at `key`, at most `cap` servers."""
    return ClaimRequest(
        operation_id=op_id,
        rate_key=key,
        max_servers=cap,
        seq_end=seq_end,
        worker=worker,
        now=now,
        lease_until=now + TTL,
    )


async def counts_and_truth(
    store: SqlJobStore,
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """(the kept per-state counts, a GROUP BY over the sub-jobs), zero counts left out."""
    kept_sql = "SELECT operation_id, state, n FROM subjob_counts WHERE n <> 0"
    truth_sql = "SELECT operation_id, state, count(*) FROM subjobs GROUP BY operation_id, state"
    async with store.db.read(snapshot=True) as conn:
        kept = {(r[0], r[1]): int(r[2]) for r in await conn.execute(sa.text(kept_sql))}
        truth = {(r[0], r[1]): int(r[2]) for r in await conn.execute(sa.text(truth_sql))}
    return kept, truth


async def claim_one(
    store: SqlJobStore, request: ClaimRequest, max_batch: list[int]
) -> Batch | None:
    """One group, or None: the single-claim view of `claim_batches`."""
    batches = await store.claim_batches(request, max_batch, 1)
    assert len(batches) <= 1
    return batches[0] if batches else None


async def plan_operation(
    store: SqlJobStore,
    entries: list[PlanEntry],
    *,
    strategy: Strategy | None = None,
    now: datetime = T0,
    kind: str = "stop",
    dry_run: bool = False,
    max_batch: int = 10,
) -> OperationRecord:
    """Create and plan an operation straight through the store (no planner loop)."""
    new = NewOperation(
        kind=kind,
        strategy=strategy or Strategy(),
        created_by="tester",
        dry_run=dry_run,
        reason="test",
    )
    op, _ = await store.create_operation(new, now)
    claimed = await store.claim_planning(WORKER, now, now + TTL)
    assert claimed is not None
    assert claimed.id == op.id
    builder = PlanBuilder()
    rows = [r for e in entries if isinstance(e, PlanItem) and (r := builder.add(e)) is not None]
    await store.insert_subjobs(claimed, rows, WORKER, now, now + TTL)
    eta = EtaInputs(ActionProfile((StepProfile(max_batch),)), claimed.strategy, 5.0, lambda k: ())
    assert await store.finish_planning(op.id, builder.summary(eta), WORKER, now)
    planned = await store.get_operation(op.id)
    assert planned is not None
    return planned


class Harness:
    """The engine's loops over a real store, driven by hand on a fake clock."""

    def __init__(
        self,
        store: SqlJobStore,
        *,
        executor: FakeExecutor | None = None,
        planner: FakePlanner | None = None,
        limiter: FakeRateLimiter | None = None,
        config: EngineConfig | None = None,
        clock: FakeClock | None = None,
    ) -> None:
        self.store = store
        self.clock = clock or FakeClock(T0)
        self.planner = planner or FakePlanner()
        self.executor = executor or FakeExecutor()
        self.limiter = limiter or FakeRateLimiter()
        # `round()` waits for every claimed call and poll before it moves the fake clock, so
        # nothing may be claimed or leased ahead (it would wait for a time that never comes).
        self.config = config or EngineConfig(
            worker=WORKER,
            poll_interval=5.0,
            retry=RetryPolicy(max_attempts=3, base_delay=1.0),
            dispatch_ahead=0.0,
            poll_ahead=0.0,
        )
        self.ops = Operations(store, self.clock)
        self.planning = PlanningLoop(
            store, self.planner, self.executor, self.limiter, self.clock, self.config
        )
        self.dispatcher = Dispatcher(
            store, self.executor, self.limiter, self.clock, self.config, rand=lambda: 0.0
        )
        self.poller = Poller(store, self.executor, self.clock, self.config, rand=lambda: 0.0)

    async def create(self, kind: str = "stop", **kw: Any) -> OperationRecord:
        view, _ = await self.ops.create(NewOperation(kind=kind, created_by="tester", **kw))
        return view.operation

    async def round(self) -> None:
        """Plan, dispatch (and wait for the calls), let poll_interval pass, poll."""
        while await self.planning.run_once():
            pass
        await self.dispatcher.run_once()
        await self.dispatcher.wait_idle()
        await self.clock.advance(self.config.poll_interval)
        await self.poller.run_once()

    async def run(self, op_id: str, rounds: int = 60) -> OperationView:
        for _ in range(rounds):
            await self.round()
            view = await self.ops.get(op_id)
            if view.operation.finished_at is not None or view.operation.refused_reason:
                return view
        raise AssertionError(f"operation {op_id} did not finish in {rounds} rounds")


@contextmanager
def executions(store: SqlJobStore) -> Iterator[list[tuple[str, int]]]:
    """The SQL statements the store sends while the block runs, each with the number of
    parameter sets it ran with (an executemany's rows)."""
    sent: list[tuple[str, int]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        sent.append((statement, len(params) if many else 1))

    engine = store.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)
