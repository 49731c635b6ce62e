"""Concurrent claimers (several stores = several replicas) never claim the same sub-job."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from jobs_store_helpers import T0, TTL, claim_one, plan_operation

from jobs.records import ClaimRequest
from jobs.states import State
from jobs.store import SqlJobStore
from jobs.testing import items

pytestmark = pytest.mark.contract

REPLICAS = 4
CLAIMERS_PER_REPLICA = 6
ROWS = 600


async def _claim_all(store: SqlJobStore, op_id: str, worker: str) -> list[int]:
    got: list[int] = []
    while True:
        request = ClaimRequest(
            operation_id=op_id,
            rate_key="cloud:action",
            max_servers=7,
            seq_end=ROWS,
            worker=worker,
            now=T0,
            lease_until=T0 + TTL,
        )
        batch = await claim_one(store, request, [7])
        if batch is None:
            return got
        assert {s.lease_owner for s in batch.subjobs} == {worker}
        got += [s.id for s in batch.subjobs]


async def test_parallel_claimers_never_double_claim(store: SqlJobStore, db_url: str) -> None:
    # Several batch keys so claimers contend on different heads as well as on the same one.
    entries = [e for k in range(3) for e in items(ROWS // 3, batch_key=f"b{k}", prefix=f"k{k}-")]
    op = await plan_operation(store, entries)
    replicas = [SqlJobStore(db_url, pool_size=CLAIMERS_PER_REPLICA) for _ in range(REPLICAS)]
    try:
        async with asyncio.timeout(90):
            results = await asyncio.gather(
                *(
                    _claim_all(replica, op.id, f"r{r}-c{c}")
                    for r, replica in enumerate(replicas)
                    for c in range(CLAIMERS_PER_REPLICA)
                )
            )
    finally:
        for replica in replicas:
            await replica.close()
    claimed = Counter(i for ids in results for i in ids)
    assert max(claimed.values()) == 1, "a sub-job was claimed twice"
    assert len(claimed) == ROWS
    assert sum(1 for ids in results if ids) > 1, "the claimers did not actually compete"
    assert (await store.counts([op.id]))[op.id] == {State.DISPATCHING: ROWS}
    calls = await store.list_calls(op.id)
    assert sorted(s for c in calls for s in c.servers) == sorted(e.target_id for e in entries)  # type: ignore[union-attr]
