"""The answers of many one-server calls (Nova's creates and actions) are recorded in a few
statements, whatever their number, with the same rows, events and lost races as recording them
one at a time. On both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from jobs_store_helpers import T0, WORKER, claim_request, executions, plan_operation

from jobs.ports import CallResult
from jobs.records import Batch, Change
from jobs.states import Event, State
from jobs.store import SqlJobStore
from jobs.testing import items

pytestmark = pytest.mark.contract

COUNT = 40


def _answers(batches: list[Batch]) -> list[tuple[list[Change], CallResult]]:
    """One answer per call: most accepted (with the cloud's job and a memo), some done at
    once, one for a call the row is no longer on, one from a state the row is not in."""
    out: list[tuple[list[Change], CallResult]] = []
    for i, batch in enumerate(batches):
        [sj] = batch.subjobs
        call = CallResult(call_id=batch.call_id, outcome="accepted", request_id=f"req-{i}")
        if i % 7 == 3:
            change = Change(
                sj.id,
                sj.operation_id,
                sj.target_id,
                State.DISPATCHING,
                Event.COMPLETE,
                code="done",
                message=f"created server-{i}",
            )
        else:
            values: tuple[tuple[str, Any], ...] = (
                ("cloud_job_id", f"job-{i}"),
                ("memo", {"since": f"2026-01-01T00:00:{i:02d}Z"}),
                ("not_before", T0 + timedelta(seconds=i)),
            )
            change = Change(
                sj.id, sj.operation_id, sj.target_id, State.DISPATCHING, Event.ACCEPT, values
            )
        if i == 11:  # a multi-step action moves on
            change = Change(
                sj.id,
                sj.operation_id,
                sj.target_id,
                State.DISPATCHING,
                Event.ADVANCE,
                (("step", 1), ("attempt", 0), ("not_before", T0)),
            )
        if i == 12:  # tried again later
            change = Change(
                sj.id,
                sj.operation_id,
                sj.target_id,
                State.DISPATCHING,
                Event.RETRY,
                (("attempt", 3), ("not_before", T0 + timedelta(seconds=9))),
            )
        if i == 5:
            call = CallResult(call_id=batches[6].call_id, outcome="accepted")  # another call
        if i == 9:
            change = Change(sj.id, sj.operation_id, sj.target_id, State.AWAITING, Event.COMPLETE)
        out.append(([change], call))
    return out


async def _run(store: SqlJobStore, together: bool) -> tuple[Any, ...]:
    op = await plan_operation(store, items(COUNT, batch_key=""), max_batch=1)
    batches = await store.claim_batches(claim_request(op.id, cap=1000), [1], COUNT)
    assert len(batches) == COUNT
    answers = _answers(batches)
    with executions(store) as sent:
        if together:
            applied = await store.apply_many(answers, WORKER, T0)
        else:
            applied = [(await store.apply_many([a], WORKER, T0))[0] for a in answers]
    rows = (await store.list_subjobs(op.id, None, None, 1000)).items
    events = await store.list_events(op.id, 0, 10_000)
    # an event tells the step and attempt the row is at after its change, as the row does
    now_at = {r.id: (r.step, r.attempt) for r in rows}
    moves = [e for e in events if e.subjob_id is not None and e.event != Event.PLAN]
    assert all((e.step, e.attempt) == now_at[e.subjob_id] for e in moves if e.event != Event.CLAIM)
    return (
        sent,
        [(a.applied, a.lost) for a in applied],
        [
            (r.target_id, r.state, r.step, r.attempt, r.cloud_job_id, r.memo, r.not_before)
            for r in sorted(rows, key=lambda r: r.target_id)
        ],
        sorted(
            (
                (
                    e.target_id,
                    e.event,
                    e.from_state,
                    e.to_state,
                    e.step,
                    e.attempt,
                    e.code,
                    e.message,
                    e.call_id,
                )
                for e in events
                if e.subjob_id is not None and e.event not in (Event.PLAN, Event.CLAIM)
            ),
            key=str,
        ),
        {b.subjobs[0].id: b.call_id for b in batches},
    )


def _by_position(run: tuple[Any, ...]) -> tuple[Any, ...]:
    """The run with call ids and sub-job ids as positions (two operations have different ids)."""
    _, applied, rows, events, calls = run
    order = {call: i for i, call in enumerate(calls.values())}
    ids = {sj: i for i, sj in enumerate(calls)}
    lost = [(n, tuple(ids[x] for x in gone)) for n, gone in applied]
    return lost, rows, [(*e[:-1], order.get(e[-1])) for e in events]


async def test_many_one_server_answers_are_recorded_in_a_few_statements(
    store: SqlJobStore,
) -> None:
    sent, applied, rows, events, calls = await _run(store, together=True)
    # one UPDATE ... RETURNING per answer took more than COUNT statements here
    assert len(sent) <= 12, sent
    lost = [i for i, (n, gone) in enumerate(applied) if gone]
    assert lost == [5, 9]  # on another call; not in the state the change comes from
    assert [n for n, _ in applied].count(1) == COUNT - 2
    states = [r[1] for r in rows]
    assert states.count(State.SUCCEEDED) == len([i for i in range(COUNT) if i % 7 == 3 and i != 9])
    assert states.count(State.DISPATCHING) == 2
    accepted = [r for r in rows if r[1] == State.AWAITING]
    assert accepted and all(r[4] and r[5] and r[6] for r in accepted)
    assert len(events) == COUNT - 2
    assert all(e[-1] in calls.values() for e in events)


async def test_recorded_together_or_one_at_a_time_the_rows_and_events_are_the_same(
    store: SqlJobStore,
) -> None:
    together = _by_position(await _run(store, together=True))
    one_by_one = _by_position(await _run(store, together=False))
    assert together == one_by_one


async def test_a_row_twice_in_one_commit_is_applied_in_order(store: SqlJobStore) -> None:
    op = await plan_operation(store, items(2, batch_key=""), max_batch=1)
    batches = await store.claim_batches(claim_request(op.id, cap=1000), [1], 2)
    [sj] = batches[0].subjobs
    call = CallResult(call_id=batches[0].call_id, outcome="accepted")
    accept = Change(sj.id, op.id, sj.target_id, State.DISPATCHING, Event.ACCEPT)
    done = Change(sj.id, op.id, sj.target_id, State.DISPATCHING, Event.COMPLETE)
    applied = await store.apply_many([([accept], call), ([done], call)], WORKER, T0)
    assert [(a.applied, a.lost) for a in applied] == [(1, ()), (0, (sj.id,))]
    [row] = [r for r in (await store.list_subjobs(op.id, None, None, 10)).items if r.id == sj.id]
    assert row.state == State.AWAITING
    moves = [e.event for e in await store.list_events(op.id, 0, 100) if e.subjob_id == sj.id]
    assert moves == [Event.CLAIM, Event.ACCEPT]


async def test_a_poll_naming_each_server_is_recorded_in_a_few_statements(
    store: SqlJobStore,
) -> None:
    """A batch call's poll that says something of each server (its id, its reason): one
    change per row, no two alike."""
    op = await plan_operation(store, items(COUNT), max_batch=COUNT)
    [batch] = await store.claim_batches(claim_request(op.id, cap=1000), [COUNT], 1)
    call = CallResult(call_id=batch.call_id, outcome="accepted")
    changes = [
        Change(
            sj.id,
            op.id,
            sj.target_id,
            State.DISPATCHING,
            Event.COMPLETE,
            message=f"created server-{i}",
        )
        for i, sj in enumerate(batch.subjobs)
    ]
    with executions(store) as sent:
        [applied] = await store.apply_many([(changes, call)], WORKER, T0)
    assert (applied.applied, applied.lost) == (COUNT, ())
    assert len(sent) <= 12, sent  # one UPDATE ... RETURNING per server took more than COUNT
    rows = (await store.list_subjobs(op.id, None, None, 1000)).items
    assert {r.state for r in rows} == {State.SUCCEEDED}
    said = {
        e.target_id: e.message
        for e in await store.list_events(op.id, 0, 1000)
        if e.event == Event.COMPLETE
    }
    assert said == {sj.target_id: f"created server-{i}" for i, sj in enumerate(batch.subjobs)}


async def test_a_change_of_its_own_tells_the_same_event_on_either_path(store: SqlJobStore) -> None:
    """The set-aside path against the change-by-change one (a commit that names a row twice
    takes the latter): the same events, with the step and attempt each change sets."""
    seen = []
    for twice in (False, True):
        op = await plan_operation(store, items(3, batch_key=""), max_batch=1)
        batches = await store.claim_batches(claim_request(op.id, cap=1000), [1], 3)
        subs = [b.subjobs[0] for b in batches]
        calls = [CallResult(call_id=b.call_id, outcome="accepted") for b in batches]
        retry = Change(
            subs[0].id,
            op.id,
            subs[0].target_id,
            State.DISPATCHING,
            Event.RETRY,
            (("attempt", 3), ("not_before", T0)),
        )
        advance = Change(
            subs[1].id,
            op.id,
            subs[1].target_id,
            State.DISPATCHING,
            Event.ADVANCE,
            (("step", 1), ("attempt", 0)),
        )
        answers = [([retry], calls[0]), ([advance], calls[1])]
        if twice:
            third = Change(subs[2].id, op.id, subs[2].target_id, State.DISPATCHING, Event.ACCEPT)
            answers += [([third], calls[2]), ([third], calls[2])]
        await store.apply_many(answers, WORKER, T0)
        events = await store.list_events(op.id, 0, 100)
        seen.append(
            sorted(
                (
                    (e.event, e.step, e.attempt)
                    for e in events
                    if e.event in (Event.RETRY, Event.ADVANCE)
                ),
                key=str,
            )
        )
    assert seen[0] == seen[1] == [(Event.ADVANCE, 1, 0), (Event.RETRY, 0, 3)]
