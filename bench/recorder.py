"""Recording one-server calls (`python bench/recorder.py [--json] [--calls N]`).

The answers of one-server calls (the Nova dialects: a call per server) are recorded through
`SqlJobStore.apply_many`, 20 calls per transaction as the recorder groups them under load: each
call accepts its sub-job (cloud job id, request id, memo, first poll time) and finishes its call
row. Reports the service-side CPU milliseconds per recorded call on SQLite. Each window of a
per-server endpoint's budget is sent as fast as its previous window's answers are recorded, so
this cost shows up directly in how long a window's calls take to leave.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs.plan import EtaInputs, PlanBuilder  # noqa: E402
from jobs.ports import ActionProfile, CallResult, PlanItem, StepProfile  # noqa: E402
from jobs.records import Change, ClaimRequest, NewOperation, OperationRecord  # noqa: E402
from jobs.states import Event, State  # noqa: E402
from jobs.store import SqlJobStore  # noqa: E402
from jobs.store.migrate import upgrade  # noqa: E402
from jobs.testing import items  # noqa: E402
from jobs.types import JSONValue  # noqa: E402

PER_TRANSACTION = 20
ROUND = 120  # one window of the default OpenStack write budget
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=60)
WORKER = "bench"


async def _planned(store: SqlJobStore) -> OperationRecord:
    """An operation of ROUND one-server sub-jobs, planned straight through the store."""
    op, _ = await store.create_operation(NewOperation(kind="stop", created_by="bench"), T0)
    claimed = await store.claim_planning(WORKER, T0, T0 + TTL)
    assert claimed is not None and claimed.id == op.id
    builder = PlanBuilder()
    rows = [r for e in items(ROUND) if isinstance(e, PlanItem) and (r := builder.add(e))]
    await store.insert_subjobs(claimed, rows, WORKER, T0, T0 + TTL)
    eta = EtaInputs(ActionProfile((StepProfile(1),)), claimed.strategy, 5.0, lambda k: ())
    assert await store.finish_planning(op.id, builder.summary(eta), WORKER, T0)
    return op


async def _record(calls: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await asyncio.to_thread(upgrade, url)
        store = SqlJobStore(url)
        try:
            cpu = 0.0
            for _ in range(max(1, calls // ROUND)):
                op = await _planned(store)
                request = ClaimRequest(
                    operation_id=op.id,
                    rate_key="cloud:action",
                    max_servers=ROUND,
                    seq_end=10**9,
                    worker=WORKER,
                    now=T0,
                    lease_until=T0 + TTL,
                )
                work = []
                for batch in await store.claim_batches(request, [1], ROUND):
                    sj = batch.subjobs[0]
                    values: tuple[tuple[str, JSONValue | datetime], ...] = (
                        ("cloud_job_id", None),
                        ("request_id", f"req-{sj.id}"),
                        ("memo", {"submission": {"server": sj.target_id, "action": "stop"}}),
                        ("not_before", T0 + timedelta(seconds=1)),
                    )
                    change = Change(
                        sj.id, op.id, sj.target_id, State.DISPATCHING, Event.ACCEPT, values
                    )
                    assert batch.call_id is not None
                    result = CallResult(batch.call_id, "accepted", None, f"req-{sj.id}")
                    work.append(([change], result))
                started = time.process_time()
                for i in range(0, len(work), PER_TRANSACTION):
                    applied = await store.apply_many(work[i : i + PER_TRANSACTION], WORKER, T0)
                    assert all(a.applied == 1 for a in applied)
                cpu += time.process_time() - started
            return cpu * 1000 / (max(1, calls // ROUND) * ROUND)
        finally:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--calls", type=int, default=1200)
    args = parser.parse_args()
    out = {"record_one_server_call": {"cpu_ms": round(asyncio.run(_record(args.calls)), 3)}}
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
