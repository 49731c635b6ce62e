"""One call's changes are applied by one UPDATE per group of equal changes: equal values (also
an unhashable memo) go together, different ones apart, each row with its own values. On both
databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from jobs_store_helpers import T0, WORKER, claim_one, claim_request, executions, plan_operation

from jobs.records import Change
from jobs.states import Event, State
from jobs.store import SqlJobStore
from jobs.testing import items

pytestmark = pytest.mark.contract


async def test_equal_changes_share_an_update_and_each_row_gets_its_own_values(
    store: SqlJobStore,
) -> None:
    op = await plan_operation(store, items(6))
    batch = await claim_one(store, claim_request(op.id, cap=6), [10])
    assert batch is not None
    due = T0 + timedelta(seconds=1)
    memo = {"submission": {"action": "stop"}}
    values: list[tuple[tuple[str, object], ...]] = [
        (("cloud_job_id", "job-a"), ("not_before", due)),
        (("cloud_job_id", "job-a"), ("not_before", due)),
        (("cloud_job_id", "job-b"), ("not_before", due)),
        (("cloud_job_id", "job-a"), ("not_before", due), ("memo", memo)),
        (("cloud_job_id", "job-a"), ("not_before", due), ("memo", dict(memo))),
        (("cloud_job_id", "job-a"), ("not_before", due + timedelta(seconds=1))),
    ]
    changes = [
        Change(s.id, op.id, s.target_id, State.DISPATCHING, Event.ACCEPT, values=v)  # type: ignore[arg-type]
        for s, v in zip(batch.subjobs, values, strict=True)
    ]
    with executions(store) as sent:
        assert (await store.apply(changes, WORKER, T0)).applied == 6
    # two groups of two (job-a; job-a with the memo), then the two rows of their own together
    assert len([sql for sql, _ in sent if sql.lstrip().startswith("UPDATE subjobs")]) == 3
    rows = {r.target_id: r for r in (await store.list_subjobs(op.id, None, None, 10)).items}
    got = [rows[s.target_id] for s in batch.subjobs]
    assert [r.state for r in got] == [State.AWAITING] * 6
    assert [r.cloud_job_id for r in got] == ["job-a", "job-a", "job-b", "job-a", "job-a", "job-a"]
    assert [r.not_before for r in got] == [due] * 5 + [due + timedelta(seconds=1)]
    assert [r.memo for r in got] == [None, None, None, memo, memo, None]
