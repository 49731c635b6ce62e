"""The job store's contract: the same assertions on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from jobs_store_helpers import T0, TTL, WORKER, claim_one, claim_request, plan_operation
from sqlalchemy.exc import IntegrityError

from jobs.decide import Context, Phase, decide_batch
from jobs.errors import Conflict, IdempotencyConflict, NotFound
from jobs.outcomes import (
    ROLLED_BACK,
    Accepted,
    Advance,
    Completed,
    Failed,
    Resubmit,
    RetryLater,
    StillRunning,
)
from jobs.ports import CallResult
from jobs.records import Change, NewOperation
from jobs.retry import RetryPolicy
from jobs.states import Event, State
from jobs.store import SqlJobStore
from jobs.store.models import SUBJOBS
from jobs.strategy import Strategy, parse_amount
from jobs.testing import items

pytestmark = pytest.mark.contract


async def test_create_returns_the_same_operation_for_the_same_idempotency_key(
    store: SqlJobStore,
) -> None:
    new = NewOperation(
        kind="stop",
        params={"type": "SOFT"},
        created_by="ops-token",
        idempotency_key="policy:7:2026-01-01T00:00",
    )
    first, created = await store.create_operation(new, T0)
    again, created_again = await store.create_operation(new, T0 + timedelta(seconds=5))
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert first.created_by == "ops-token"
    with pytest.raises(IdempotencyConflict):
        await store.create_operation(replace(new, params={"type": "HARD"}), T0)


async def test_concurrent_creates_with_one_key_make_one_operation(store: SqlJobStore) -> None:
    new = NewOperation(kind="reboot", created_by="t", idempotency_key="same")
    results = await asyncio.gather(*(store.create_operation(new, T0) for _ in range(6)))
    assert len({op.id for op, _ in results}) == 1
    assert sum(created for _, created in results) == 1


async def test_planning_writes_rows_in_plan_order_with_skips_first(store: SqlJobStore) -> None:
    op = await plan_operation(store, items(12, skip={3: "excluded", 7: "already stopped"}))
    assert (op.targets, op.skipped, op.rate_keys) == (10, 2, ("cloud:action",))
    assert op.summary is not None
    assert op.summary.skipped_by_reason == {"excluded": 1, "already stopped": 1}
    counts = await store.counts([op.id])
    assert counts[op.id] == {State.PENDING: 10, State.SKIPPED: 2}
    page = await store.list_subjobs(op.id, None, None, 5)
    assert [s.target_id for s in page.items] == [
        "srv-00003",
        "srv-00007",
        "srv-00000",
        "srv-00001",
        "srv-00002",
    ]
    assert page.items[0].reason == "excluded"
    rest = await store.list_subjobs(op.id, None, page.next_cursor, 100)
    assert rest.next_cursor is None
    assert len(rest.items) == 7
    skipped = await store.list_subjobs(op.id, State.SKIPPED, None, 100)
    assert {s.target_id for s in skipped.items} == {"srv-00003", "srv-00007"}


async def test_one_server_calls_each_get_the_call_row_naming_their_server(
    store: SqlJobStore,
) -> None:
    """Many one-server groups in one transaction: every sub-job is on its own call, and that call
    names it (ids allocated with the rows on SQLite, returned in order on PostgreSQL), also when
    older calls exist."""
    first = await plan_operation(store, items(3))
    await store.claim_batches(claim_request(first.id), [1], 3)
    op = await plan_operation(store, items(40))
    batches = await store.claim_batches(claim_request(op.id), [1], 25)
    assert len(batches) == 25 and len({b.call_id for b in batches}) == 25
    named = {c.id: c.servers for c in await store.list_calls(op.id)}
    for batch in batches:
        assert named[batch.call_id] == batch.target_ids
        assert {s.call_id for s in batch.subjobs} == {batch.call_id}
    page = await store.list_subjobs(op.id, State.DISPATCHING, None, 100)
    assert {s.target_id: s.call_id for s in page.items} == {
        b.target_ids[0]: b.call_id for b in batches
    }


async def test_claim_is_written_ahead_with_its_call_row(store: SqlJobStore) -> None:
    op = await plan_operation(store, items(25))
    batch = await claim_one(store, claim_request(op.id), [10])
    assert batch is not None
    assert batch.target_ids == tuple(f"srv-{i:05d}" for i in range(10))
    assert {s.state for s in batch.subjobs} == {State.DISPATCHING}
    assert {s.attempt for s in batch.subjobs} == {1}
    assert batch.call_id is not None
    page = await store.list_subjobs(op.id, State.DISPATCHING, None, 100)
    assert {s.call_id for s in page.items} == {batch.call_id}
    assert {s.lease_owner for s in page.items} == {WORKER}
    [call] = await store.list_calls(op.id)
    assert (call.purpose, call.servers, call.finished_at) == ("submit", batch.target_ids, None)
    events = await store.list_events(op.id, 0, 1000)
    assert sum(e.event == Event.CLAIM for e in events) == 10


async def test_a_claim_takes_one_batch_key_step_and_verify_flag(store: SqlJobStore) -> None:
    entries = items(6, batch_key="x") + items(6, batch_key="y", prefix="other-")
    op = await plan_operation(store, entries)
    first = await claim_one(store, claim_request(op.id), [100])
    second = await claim_one(store, claim_request(op.id), [100])
    assert first is not None
    assert second is not None
    assert {s.batch_key for s in first.subjobs} == {"x"}
    assert {s.batch_key for s in second.subjobs} == {"y"}
    assert await claim_one(store, claim_request(op.id), [100]) is None


async def test_claims_respect_waves_caps_and_not_before(store: SqlJobStore) -> None:
    op = await plan_operation(store, items(10))
    batch = await claim_one(store, claim_request(op.id, seq_end=3), [100])
    assert batch is not None
    assert len(batch.subjobs) == 3  # the released wave only
    assert await claim_one(store, claim_request(op.id, seq_end=3), [100]) is None
    capped = await claim_one(store, claim_request(op.id, cap=2), [100])
    assert capped is not None
    assert len(capped.subjobs) == 2
    sub = capped.subjobs[0]
    later = T0 + timedelta(seconds=30)
    change = Change(
        sub.id,
        op.id,
        sub.target_id,
        State.DISPATCHING,
        Event.RETRY,
        values=(("not_before", later),),
    )
    await store.apply([change], WORKER, T0)
    rest = await claim_one(store, claim_request(op.id), [100])
    assert rest is not None
    assert sub.id not in {s.id for s in rest.subjobs}
    retried = await claim_one(store, claim_request(op.id, now=later), [100])
    assert retried is not None
    assert [s.id for s in retried.subjobs] == [sub.id]
    assert retried.subjobs[0].attempt == 2


async def test_apply_is_a_compare_and_set(store: SqlJobStore) -> None:
    op = await plan_operation(store, items(3))
    batch = await claim_one(store, claim_request(op.id), [10])
    assert batch is not None
    a, b, c = batch.subjobs
    changes = [
        Change(
            a.id,
            op.id,
            a.target_id,
            State.DISPATCHING,
            Event.ACCEPT,
            values=(("cloud_job_id", "job-1"), ("accepted_at", T0)),
        ),
        Change(b.id, op.id, b.target_id, State.AWAITING, Event.COMPLETE),  # wrong state
        Change(c.id, op.id, c.target_id, State.DISPATCHING, Event.COMPLETE),
    ]
    call = CallResult(batch.call_id or 0, "mixed", cloud_job_id="job-1")
    applied = await store.apply(changes, WORKER, T0, call)
    assert (applied.applied, applied.lost) == (2, (b.id,))
    # another worker cannot move what it does not hold
    stranger = await store.apply(
        [Change(b.id, op.id, b.target_id, State.DISPATCHING, Event.COMPLETE)], "worker-b", T0
    )
    assert (stranger.applied, stranger.lost) == (0, (b.id,))
    rows = {s.target_id: s for s in (await store.list_subjobs(op.id, None, None, 10)).items}
    assert rows[a.target_id].state is State.AWAITING
    assert rows[a.target_id].cloud_job_id == "job-1"
    assert rows[a.target_id].lease_owner is None
    assert rows[b.target_id].state is State.DISPATCHING
    assert rows[c.target_id].state is State.SUCCEEDED
    [recorded] = await store.list_calls(op.id)
    assert (recorded.outcome, recorded.cloud_job_id) == ("mixed", "job-1")
    events = [e for e in await store.list_events(op.id, 0, 100) if e.subjob_id is not None]
    assert [(e.target_id, e.event) for e in events if e.event != Event.CLAIM] == [
        (a.target_id, "accept"),
        (c.target_id, "complete"),
    ]


async def test_the_error_budget_stops_the_operation_and_cancels_the_rest(
    store: SqlJobStore,
) -> None:
    strategy = Strategy(max_errors=parse_amount("10%", "max_errors"))
    op = await plan_operation(store, items(50), strategy=strategy)
    batch = await claim_one(store, claim_request(op.id, cap=7), [10])
    assert batch is not None
    fails = [
        Change(
            s.id,
            op.id,
            s.target_id,
            State.DISPATCHING,
            Event.FAIL,
            code="E",
            values=(("error_code", "E"),),
        )
        for s in batch.subjobs[:5]
    ]
    result = await store.apply(fails, WORKER, T0)
    assert result.halted == ()  # 5 failures are within 10% of 50
    sixth = batch.subjobs[5]
    result = await store.apply(
        [Change(sixth.id, op.id, sixth.target_id, State.DISPATCHING, Event.FAIL)], WORKER, T0
    )
    assert result.halted == (op.id,)
    counts = (await store.counts([op.id]))[op.id]
    assert counts == {State.FAILED: 6, State.DISPATCHING: 1, State.CANCELLED: 43}
    stopped = await store.get_operation(op.id)
    assert stopped is not None
    assert stopped.halted_reason is not None
    assert "6 failures, 5 allowed" in stopped.halted_reason
    assert stopped.finished_at is None  # one call is still in flight
    assert await store.active_operations() == []
    last = batch.subjobs[6]
    done = await store.apply(
        [Change(last.id, op.id, last.target_id, State.DISPATCHING, Event.COMPLETE)], WORKER, T0
    )
    assert done.finished == (op.id,)


async def test_waves_release_one_after_another_and_can_pause(store: SqlJobStore) -> None:
    waves = tuple(parse_amount(w, "waves", minimum=1) for w in (1, "10%", "100%"))
    op = await plan_operation(
        store, items(50), strategy=Strategy(waves=waves, pause_after_wave=True)
    )
    assert op.current_wave == 0
    first = await claim_one(store, claim_request(op.id, seq_end=1), [100])
    assert first is not None
    [sub] = first.subjobs
    await store.apply(
        [Change(sub.id, op.id, sub.target_id, State.DISPATCHING, Event.COMPLETE)], WORKER, T0
    )
    paused = await store.get_operation(op.id)
    assert paused is not None
    assert (paused.current_wave, paused.paused) == (0, True)
    resumed = await store.set_paused(op.id, False, "ops", T0)
    assert (resumed.current_wave, resumed.paused) == (1, False)
    names = [e.event for e in await store.list_events(op.id, 0, 500) if e.subjob_id is None]
    assert names[-3:] == ["operation.paused", "operation.resumed", "operation.wave_started"]


async def test_cancel_pause_and_retry_failed(store: SqlJobStore) -> None:
    op = await plan_operation(store, items(5))
    batch = await claim_one(store, claim_request(op.id, cap=2), [10])
    assert batch is not None
    x, y = batch.subjobs
    await store.apply(
        [
            Change(
                x.id,
                op.id,
                x.target_id,
                State.DISPATCHING,
                Event.FAIL,
                values=(("error_code", "Ecs.0001"),),
            )
        ],
        WORKER,
        T0,
    )
    assert await store.retry_failed(op.id, "ops", T0) == 1
    again = (await store.list_subjobs(op.id, State.PENDING, None, 10)).items
    assert x.id in {s.id for s in again}
    assert next(s for s in again if s.id == x.id).error_code is None
    paused = await store.set_paused(op.id, True, "ops", T0)
    assert paused.paused
    assert await store.active_operations() == []
    cancelled = await store.cancel(op.id, "ops", T0)
    assert cancelled.cancel_requested
    assert cancelled.cancelled_by == "ops"
    counts = (await store.counts([op.id]))[op.id]
    assert counts == {State.CANCELLED: 4, State.DISPATCHING: 1}  # y is still in flight
    with pytest.raises(Conflict):
        await store.set_paused(op.id, False, "ops", T0)
    await store.apply(
        [Change(y.id, op.id, y.target_id, State.DISPATCHING, Event.COMPLETE)], WORKER, T0
    )
    finished = await store.get_operation(op.id)
    assert finished is not None
    assert finished.finished_at is not None
    with pytest.raises(NotFound):
        await store.cancel("nope", "ops", T0)


async def test_reap_and_recover_send_nothing_blind(store: SqlJobStore) -> None:
    op = await plan_operation(store, items(4))
    mine = await claim_one(store, claim_request(op.id, cap=2), [10])
    theirs = await claim_one(store, claim_request(op.id, cap=2, worker="worker-b"), [10])
    assert mine is not None
    assert theirs is not None
    assert await store.reap(T0 + TTL - timedelta(seconds=1)) == 0
    assert await store.recover(WORKER, T0) == 2  # my previous life's rows, at once
    assert await store.reap(T0 + TTL + timedelta(seconds=1)) == 2  # theirs, once expired
    rows = (await store.list_subjobs(op.id, None, None, 10)).items
    assert {(s.state, s.verify_first) for s in rows} == {(State.PENDING, True)}
    verify = await claim_one(store, claim_request(op.id, now=T0 + TTL * 2), [10])
    assert verify is not None
    assert verify.verify
    assert {s.attempt for s in verify.subjobs} == {1}  # a verification is not a send
    calls = await store.list_calls(op.id)
    assert calls[-1].purpose == "verify"


async def test_heartbeats_keep_leases_alive(store: SqlJobStore) -> None:
    op = await plan_operation(store, items(2))
    await store.register_worker(WORKER, "host", 1, T0, T0 + TTL)
    batch = await claim_one(store, claim_request(op.id), [10])
    assert batch is not None
    held, stuck = batch.subjobs
    # only what the process really holds is renewed: a stuck row is left to the reaper
    assert await store.renew_leases(WORKER, T0, T0 + TTL * 3, [held.id]) == 1
    assert await store.reap(T0 + TTL * 2) == 1
    rows = {s.id: s for s in (await store.list_subjobs(op.id, None, None, 10)).items}
    assert rows[held.id].state is State.DISPATCHING
    assert (rows[stuck.id].state, rows[stuck.id].verify_first) == (State.PENDING, True)


async def test_named_leases_fail_over(store: SqlJobStore) -> None:
    assert await store.try_lease("rate:ecs", "a", T0, T0 + TTL)
    assert not await store.try_lease("rate:ecs", "b", T0, T0 + TTL)
    assert await store.try_lease("rate:ecs", "a", T0, T0 + TTL * 2)  # renew
    assert await store.try_lease("rate:ecs", "b", T0 + TTL * 3, T0 + TTL * 4)  # expired: taken
    await store.release_lease("rate:ecs", "b")
    assert await store.try_lease("rate:ecs", "a", T0, T0 + TTL)


async def test_refusal_leaves_nothing_behind(store: SqlJobStore) -> None:
    op, _ = await store.create_operation(NewOperation(kind="delete", created_by="t"), T0)
    claimed = await store.claim_planning(WORKER, T0, T0 + TTL)
    assert claimed is not None
    from jobs.plan import PlanBuilder

    builder = PlanBuilder()
    rows = [r for e in items(30) if (r := builder.add(e)) is not None]  # type: ignore[arg-type]
    await store.insert_subjobs(claimed, rows, WORKER, T0, T0 + TTL)
    assert await store.refuse_planning(op.id, "blast radius: 30 > 10", None, WORKER, T0)
    refused = await store.get_operation(op.id)
    assert refused is not None
    assert refused.refused_reason == "blast radius: 30 > 10"
    assert (await store.counts([op.id]))[op.id] == {}
    assert await store.claim_planning(WORKER, T0, T0 + TTL) is None


async def test_the_state_column_refuses_unknown_states(store: SqlJobStore) -> None:
    op = await plan_operation(store, items(1))
    async with store.db.write() as conn:
        await conn.execute(sa.update(SUBJOBS).values(state=State.PENDING.value))  # a known one
    with pytest.raises(IntegrityError):
        async with store.db.write() as conn:
            await conn.execute(
                sa.update(SUBJOBS).where(SUBJOBS.c.operation_id == op.id).values(state="exploded")
            )


async def test_operations_page_newest_first(store: SqlJobStore) -> None:
    ids = []
    for i in range(5):
        op, _ = await store.create_operation(
            NewOperation(kind="start", created_by="t"), T0 + timedelta(seconds=i)
        )
        ids.append(op.id)
    first = await store.list_operations(None, 2)
    second = await store.list_operations(first.next_cursor, 2)
    third = await store.list_operations(second.next_cursor, 2)
    seen = [o.id for page in (first, second, third) for o in page.items]
    assert seen == list(reversed(ids))
    assert third.next_cursor is None


async def test_bulk_planning_of_many_rows(store: SqlJobStore) -> None:
    op = await plan_operation(store, items(10_000), max_batch=1000)
    assert (await store.counts([op.id]))[op.id] == {State.PENDING: 10_000}
    batch = await claim_one(store, claim_request(op.id, cap=5000), [1000])
    assert batch is not None
    assert len(batch.subjobs) == 1000


async def test_one_server_groups_are_claimed_together_each_with_its_call(
    store: SqlJobStore,
) -> None:
    entries = items(3, batch_key="x") + items(3, batch_key="y", prefix="other-")
    op = await plan_operation(store, entries)
    batches = await store.claim_batches(claim_request(op.id), [1], 4)
    assert [b.target_ids for b in batches] == [
        ("srv-00000",),
        ("srv-00001",),
        ("srv-00002",),
        ("other-00000",),
    ]
    assert [b.batch_key for b in batches] == ["x", "x", "x", "y"]
    assert len({b.call_id for b in batches}) == 4
    page = await store.list_subjobs(op.id, State.DISPATCHING, None, 100)
    assert {s.target_id: s.call_id for s in page.items} == {
        b.target_ids[0]: b.call_id for b in batches
    }
    assert {s.attempt for s in page.items} == {1}
    assert {s.lease_owner for s in page.items} == {WORKER}
    calls = await store.list_calls(op.id)
    assert sorted((c.id, c.servers) for c in calls) == sorted(
        (b.call_id, b.target_ids) for b in batches
    )
    events = await store.list_events(op.id, 0, 1000)
    assert sorted(e.call_id for e in events if e.event == Event.CLAIM) == sorted(
        b.call_id for b in batches
    )
    rest = await store.claim_batches(claim_request(op.id, cap=5), [1], 10)
    assert [b.target_ids for b in rest] == [("other-00001",), ("other-00002",)]


@pytest.mark.parametrize("max_batch", [[10], [1]])
async def test_a_claim_after_a_pause_or_cancel_takes_nothing(
    store: SqlJobStore, max_batch: list[int]
) -> None:
    """The dispatcher lists claimable operations, then claims: a pause (or cancel) committed in
    between wins, whichever claim path (groups, one-server calls) runs."""
    op = await plan_operation(store, items(4))
    await store.set_paused(op.id, True, "ops", T0)
    assert await store.claim_batches(claim_request(op.id), max_batch, 4) == []
    await store.set_paused(op.id, False, "ops", T0)
    first = await store.claim_batches(claim_request(op.id, cap=1), max_batch, 1)
    assert [b.target_ids for b in first] == [("srv-00000",)]
    await store.cancel(op.id, "ops", T0)
    assert await store.claim_batches(claim_request(op.id), max_batch, 4) == []
    counts = (await store.counts([op.id]))[op.id]
    assert counts == {State.DISPATCHING: 1, State.CANCELLED: 3}


@pytest.mark.parametrize("was_sent", [False, True])
async def test_a_cancel_verifies_what_a_crash_may_have_sent(
    store: SqlJobStore, was_sent: bool
) -> None:
    """A sub-job whose call may have reached the cloud is not cancelled blind: it is verified
    first; what the cloud did is a success, what it never got is then cancelled."""
    op = await plan_operation(store, items(3))
    batch = await claim_one(store, claim_request(op.id, cap=1), [10])
    assert batch is not None
    later = T0 + TTL * 2
    assert await store.reap(later) == 1  # its worker died mid-call
    await store.cancel(op.id, "ops", later)
    counts = (await store.counts([op.id]))[op.id]
    assert counts == {State.PENDING: 1, State.CANCELLED: 2}
    [active] = await store.active_operations()
    assert (active.operation.id, active.stopped, active.in_flight) == (op.id, True, 1)
    assert await store.claim_batches(claim_request(op.id, now=later), [10], 4) == []
    begun = replace(claim_request(op.id, now=later), begun_only=True)
    verify = await claim_one(store, begun, [10])
    assert verify is not None
    assert verify.verify
    assert verify.target_ids == batch.target_ids
    [sub] = verify.subjobs
    read = Completed(reason="verified") if was_sent else Resubmit(reason="no trace")
    ctx = Context(later, Phase.VERIFY, RetryPolicy(), 5.0, 3600.0, lambda: 0.0)
    await store.apply(decide_batch(verify, {sub.id: read}, ctx), WORKER, later)
    counts = (await store.counts([op.id]))[op.id]
    assert counts == (
        {State.SUCCEEDED: 1, State.CANCELLED: 2} if was_sent else {State.CANCELLED: 3}
    )
    finished = await store.get_operation(op.id)
    assert finished is not None
    assert finished.finished_at is not None
    assert await store.active_operations() == []


def _ctx(phase: Phase, now: datetime, max_attempts: int = 8) -> Context:
    return Context(now, phase, RetryPolicy(max_attempts=max_attempts), 5.0, 3600.0, lambda: 0.0)


@pytest.mark.parametrize("how", ["await_timeout", "ambiguous_give_up", "refused"])
async def test_retry_failed_reads_back_what_may_have_acted(store: SqlJobStore, how: str) -> None:
    """A failure after which the cloud may still have acted (accepted, then no result in
    max_await; or the last send ambiguous) is verified before anything is sent again; a plain
    refusal is simply sent again."""
    op = await plan_operation(store, items(1))
    batch = await claim_one(store, claim_request(op.id), [10])
    assert batch is not None
    [sub] = batch.subjobs
    if how == "await_timeout":
        accepted = {sub.id: Accepted(cloud_job_id="job-1")}
        await store.apply(decide_batch(batch, accepted, _ctx(Phase.SUBMIT, T0)), WORKER, T0)
        late = T0 + timedelta(seconds=4000)
        polled = await store.claim_polls(WORKER, late, late + TTL, 10)
        poll = replace(batch, subjobs=tuple(polled), call_id=None)
        await store.apply(
            decide_batch(poll, {sub.id: StillRunning()}, _ctx(Phase.POLL, late)), WORKER, late
        )
    else:
        outcome = (
            RetryLater(reason="gateway timeout", maybe_sent=True)
            if how == "ambiguous_give_up"
            else Failed("Ecs.0001", "refused")
        )
        changes = decide_batch(batch, {sub.id: outcome}, _ctx(Phase.SUBMIT, T0, max_attempts=1))
        await store.apply(changes, WORKER, T0)
    assert (await store.counts([op.id]))[op.id] == {State.FAILED: 1}
    later = T0 + timedelta(seconds=5000)
    assert await store.retry_failed(op.id, "ops", later) == 1
    again = await claim_one(store, claim_request(op.id, now=later), [10])
    assert again is not None
    assert again.verify is (how != "refused")


async def test_retry_failed_restarts_a_rolled_back_action_from_its_first_step(
    store: SqlJobStore,
) -> None:
    """A resize that failed and was reverted (the revert step ran) is retried from its first
    step, on that step's rate and batch keys, not by reverting again."""
    op = await plan_operation(store, items(1), kind="resize")
    step0 = await claim_one(store, claim_request(op.id), [10])
    assert step0 is not None
    [sub] = step0.subjobs
    ctx = _ctx(Phase.POLL, T0)
    resize = {sub.id: Advance(next_step=1, rate_key="cloud:confirm", batch_key="c")}
    await store.apply(decide_batch(step0, resize, ctx), WORKER, T0)
    step1 = await claim_one(store, claim_request(op.id, key="cloud:confirm"), [10])
    assert step1 is not None
    revert = Advance(
        next_step=2, rate_key="cloud:revert", batch_key="r", memo={ROLLED_BACK: "[E] failed"}
    )
    await store.apply(decide_batch(step1, {sub.id: revert}, ctx), WORKER, T0)
    step2 = await claim_one(store, claim_request(op.id, key="cloud:revert"), [10])
    assert step2 is not None
    reverted = Failed("resize_reverted", "reverted after: [E] failed")
    await store.apply(decide_batch(step2, {sub.id: reverted}, ctx), WORKER, T0)
    assert await store.retry_failed(op.id, "ops", T0) == 1
    [row] = (await store.list_subjobs(op.id, None, None, 10)).items
    assert (row.state, row.step, row.rate_key, row.batch_key, row.memo) == (
        State.PENDING,
        0,
        "cloud:action",
        "b",
        None,
    )
    again = await claim_one(store, claim_request(op.id), [10])
    assert again is not None
    assert (again.step, again.verify) == (0, False)


async def test_an_answer_applies_only_to_rows_still_on_its_call(store: SqlJobStore) -> None:
    """This worker's lease ran out mid-call and it claimed the row again (a verification): the
    first call's late answer must not settle the row now on the second call."""
    op = await plan_operation(store, items(1))
    first = await claim_one(store, claim_request(op.id), [10])
    assert first is not None
    later = T0 + TTL * 2
    assert await store.reap(later) == 1
    second = await claim_one(store, claim_request(op.id, now=later), [10])
    assert second is not None
    assert second.verify
    [sub] = first.subjobs
    assert first.call_id is not None and second.call_id is not None
    late = decide_batch(first, {sub.id: Accepted(cloud_job_id="job-1")}, _ctx(Phase.SUBMIT, later))
    applied = await store.apply(late, WORKER, later, CallResult(first.call_id, "accepted", "job-1"))
    assert (applied.applied, applied.lost) == (0, (sub.id,))
    [row] = (await store.list_subjobs(op.id, None, None, 10)).items
    assert (row.state, row.call_id) == (State.DISPATCHING, second.call_id)
    answer = decide_batch(second, {sub.id: Completed(reason="verified")}, _ctx(Phase.VERIFY, later))
    applied = await store.apply(answer, WORKER, later, CallResult(second.call_id, "completed"))
    assert applied.applied == 1
