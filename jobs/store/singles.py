"""Recording many changes of their own in a few statements.

A change that no other change of its call shares (the answer of a one-server call, Nova's; a
poll's result that names each server, by its id or its reason) was recorded by an UPDATE ...
RETURNING of its own: a commit of 120 one-server answers, or a poll of 400 created servers, was
as many statements, each a turn of the database driver and of the event loop while SQLite's one
writer lock was held (0.2-0.5 s of holding it under load), and the claims and polls waiting for
that lock waited as long. Now a commit sets such changes aside and applies them together: it
reads their rows' guard columns once (locked, on PostgreSQL), decides in memory which changes
still apply (the compare-and-set the single UPDATE made: the state it comes from, this worker's
lease, the same call), and runs one executemany UPDATE per shape of change. The UPDATE keeps the
guard, so it never moves a row the read did not see as applying; under SQLite's write lock, or
the rows' locks on PostgreSQL, nothing moves them between the read and the write. Changes that
several rows share keep their one set-based UPDATE (`jobs.store.claims`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobs.ports import CallResult
from jobs.records import Applied, Change
from jobs.states import State, target
from jobs.store.base import CHUNK, MOVED_COLUMNS, Moved, ids_in, moved, transition_events
from jobs.store.models import SUBJOBS

_S = SUBJOBS.c
Single = tuple[int, Change, CallResult | None]
"""A change set aside: the index of its item in the commit, the change, the item's call."""


def each_row_once(items: Sequence[tuple[Sequence[Change], CallResult | None]]) -> bool:
    """Whether no sub-job is changed twice in the commit (a row moved twice is applied in
    order, change by change, instead)."""
    ids = [change.subjob_id for changes, _ in items for change in changes]
    return len(set(ids)) == len(ids)


async def apply_singles(
    conn: AsyncConnection,
    singles: Sequence[Single] | None,
    worker: str,
    now: datetime,
    events: list[dict[str, object]],
) -> dict[int, Applied]:
    """Apply the changes set aside; what each item's changes did, by the item's index. Their
    event rows go to `events`."""
    if not singles:
        return {}
    rows = await _guards(conn, [change.subjob_id for _, change, _ in singles])
    applied: dict[int, int] = {}
    lost: dict[int, list[int]] = {}
    shapes: dict[tuple[tuple[str, ...], bool], list[dict[str, object]]] = {}
    for index, change, call in singles:
        applied.setdefault(index, 0)
        to_state, on_call, params = move_params(change, worker, now, call)
        row = rows.get(change.subjob_id)
        if row is None or not _applies(row, change, worker, on_call):
            lost.setdefault(index, []).append(change.subjob_id)
            continue
        keys = tuple(k for k, _ in change.values)
        shapes.setdefault((keys, on_call is not None), []).append(
            {**params, "m_id": change.subjob_id}
        )
        applied[index] += 1
        if change.event is not None:
            events += transition_events(
                [_after(row.moved, change)],  # as RETURNING read it: the step and attempt set
                change.event,
                change.from_state,
                to_state,
                now,
                worker,
                code=change.code,
                message=change.message,
                call_id=None if call is None else call.call_id,
            )
    for (keys, on_call_guard), batch in shapes.items():
        done = await conn.execute(_update_one(keys, on_call_guard), batch)
        if conn.dialect.supports_sane_multi_rowcount and done.rowcount != len(batch):
            # the read and the write disagree: undo the commit rather than count what did not move
            raise RuntimeError(
                f"{len(batch)} changes applied in memory, {done.rowcount} in the database"
            )
    return {i: Applied(n, tuple(lost.get(i, ()))) for i, n in applied.items()}


def move_params(
    change: Change, worker: str, now: datetime, call: CallResult | None
) -> tuple[State, CallResult | None, dict[str, object]]:
    """What a change's compare-and-set UPDATE (`compare_and_set`) binds, besides the rows: the
    state it moves to, the call the rows must still be on (an answer to a call applies to the
    sub-jobs still on that very call: a row this worker claimed again meanwhile, its lease run
    out, belongs to the newer call), and the parameters."""
    to_state = change.from_state if change.event is None else target(change.event)
    on_call = call if change.from_state is State.DISPATCHING else None
    params: dict[str, object] = {
        "m_from": change.from_state.value,
        "m_worker": worker,
        "m_to": to_state.value,
        "m_now": now,
        **{f"v_{k}": v for k, v in change.values},
    }
    if on_call is not None:
        params["m_call"] = on_call.call_id
    return to_state, on_call, params


@dataclass(frozen=True, slots=True)
class _Row:
    moved: Moved
    state: str
    lease_owner: str | None
    call_id: int | None

    @classmethod
    def of(cls, values: Sequence[object]) -> _Row:
        [moved_row] = moved([values[:5]])
        owner, call_id = values[6], values[7]
        return cls(
            moved_row,
            str(values[5]),
            None if owner is None else str(owner),
            None if call_id is None else int(str(call_id)),
        )


async def _guards(conn: AsyncConnection, ids: list[int]) -> dict[int, _Row]:
    """The rows' identity and guard columns, locked in id order on PostgreSQL."""
    dialect = conn.dialect.name
    out: dict[int, _Row] = {}
    for start in range(0, len(ids), CHUNK):
        stmt = (
            sa.select(*MOVED_COLUMNS, _S.state, _S.lease_owner, _S.call_id)
            .where(ids_in(_S.id, ids[start : start + CHUNK], dialect))
            .order_by(_S.id)
        )
        if dialect == "postgresql":
            stmt = stmt.with_for_update()
        for values in (await conn.execute(stmt)).all():
            row = _Row.of(values)
            out[row.moved.id] = row
    return out


def _after(moved_row: Moved, change: Change) -> Moved:
    """The row's identity after the change: the step and attempt it sets."""
    step, attempt = change.value("step"), change.value("attempt")
    return replace(
        moved_row,
        step=step if isinstance(step, int) else moved_row.step,
        attempt=attempt if isinstance(attempt, int) else moved_row.attempt,
    )


def _applies(row: _Row, change: Change, worker: str, call: CallResult | None) -> bool:
    if row.state != change.from_state.value or row.lease_owner != worker:
        return False
    return call is None or row.call_id == call.call_id


@functools.lru_cache(maxsize=128)
def _update_one(keys: tuple[str, ...], on_call: bool) -> sa.Update:
    """One row's compare-and-set UPDATE setting `keys`, to run for many rows at once."""
    return compare_and_set(_S.id == sa.bindparam("m_id"), keys, on_call)


def compare_and_set(ids: sa.ColumnElement[bool], keys: tuple[str, ...], on_call: bool) -> sa.Update:
    """The UPDATE that moves the rows `ids` selects, only where they are still in the state the
    change comes from (`m_from`) under this worker's lease (`m_worker`) and, `on_call`, on the
    call answered (`m_call`): to `m_to`, lease released, the change's `keys` set (`v_<key>`)."""
    guard = [
        ids,
        _S.state == sa.bindparam("m_from"),
        _S.lease_owner == sa.bindparam("m_worker"),
    ]
    if on_call:
        guard.append(_S.call_id == sa.bindparam("m_call"))
    return (
        sa.update(SUBJOBS)
        .where(*guard)
        .values(
            state=sa.bindparam("m_to"),
            lease_owner=None,
            lease_expires_at=None,
            updated_at=sa.bindparam("m_now"),
            **{k: sa.bindparam(f"v_{k}") for k in keys},
        )
    )
