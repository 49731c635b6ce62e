"""Sub-job SQL for the loops: claim (write-ahead), apply outcomes (compare-and-set), poll leases.

Part of the store (see `jobs.store`). Every transition is ``UPDATE ... WHERE id IN (...) AND
state = :from AND lease_owner = :me ... RETURNING``: a row that moved meanwhile (reaped, cancelled,
claimed by another replica) is simply not returned, and gets no event row.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Hashable, Sequence
from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.sql.sqltypes import UTCDateTime

from jobs.ports import CallResult
from jobs.records import ActiveOperation, Applied, Batch, Change, ClaimRequest, SubJobRecord
from jobs.states import IN_FLIGHT, Event, State
from jobs.store import counts
from jobs.store.base import (
    CHUNK,
    MOVED_COLUMNS,
    PG_IDS,
    SQLITE_VARIABLES,
    Moved,
    call_row,
    converter,
    ids_in,
    insert_events,
    moved,
    pending_approval,
    to_operation,
    to_subjob,
    transition_events,
)
from jobs.store.db import Database
from jobs.store.models import BEGUN_INDEX, BEGUN_SQL, CLOUD_CALLS, OPERATIONS, SUBJOBS
from jobs.store.settle import settle
from jobs.store.singles import (
    Single,
    apply_singles,
    compare_and_set,
    each_row_once,
    move_params,
)

SETTABLE = frozenset(
    {
        "not_before",
        "step",
        "attempt",
        "throttles",
        "throttled_since",
        "cloud_job_id",
        "request_id",
        "accepted_at",
        "error_code",
        "error_message",
        "reason",
        "verify_first",
        "begun",
        "batch_key",
        "rate_key",
        "memo",
    }
)
_S = SUBJOBS.c


def _runnable() -> tuple[sa.ColumnElement[bool], ...]:
    """An operation whose sub-jobs may still be dispatched (those already begun, at least)."""
    c = OPERATIONS.c
    return (c.planned_at.is_not(None), c.finished_at.is_(None), c.dry_run.is_(False))


def _stopped() -> sa.ColumnElement[bool]:
    """Paused, cancelled, halted or waiting for an approval: no server is begun, those begun
    finish (`begun`; an operation waiting for an approval has none)."""
    c = OPERATIONS.c
    return sa.or_(
        c.paused.is_(True),
        c.cancel_requested.is_(True),
        c.halted_reason.is_not(None),
        pending_approval(),
    )


def begun() -> sa.TextClause:
    """A PENDING sub-job whose server's action has begun (`jobs.store.models.BEGUN_SQL`: the cloud
    accepted a call of it, or one may have reached it). It is in flight: a cancel, an
    error-budget stop or a pause lets it finish (D20), and it counts against `max_in_flight`.
    Indexed by `ix_subjobs_begun` (a partial index: the query must repeat its expression)."""
    return sa.text(BEGUN_SQL)


async def active_operations(db: Database) -> list[ActiveOperation]:
    """Operations the dispatcher may claim for, with their in-flight counts: the running ones,
    and the stopped ones (paused, cancelled, halted) that still have begun sub-jobs to finish."""
    c = OPERATIONS.c
    stmt = (
        sa.select(OPERATIONS, _stopped().label("stopped"))
        .where(*_runnable())
        .order_by(c.created_at, c.id)
    )
    async with db.read() as conn:
        rows = (await conn.execute(stmt)).all()
        if not rows:
            return []
        ops = [(to_operation(r._mapping), bool(r._mapping["stopped"])) for r in rows]
        ids = [o.id for o, _ in ops]
        in_flight, begun_rows = await _in_flight_counts(db, conn, ids)
    return [
        ActiveOperation(
            o, in_flight.get(o.id, 0) + begun_rows.get(o.id, 0), stopped, begun_rows.get(o.id, 0)
        )
        for o, stopped in ops
        if not stopped or begun_rows.get(o.id)
    ]


# SQLite, without statistics, would take `ix_subjobs_state` (two equalities) for the begun ones and
# scan every pending row, so it is told to use the partial index (SQLAlchemy renders no SQLite
# index hints); PostgreSQL's planner finds it. Constants of this module only; the ids are bound.
_BEGUN_SQLITE = sa.text(
    "SELECT operation_id, count(*) FROM subjobs INDEXED BY "  # noqa: S608
    f"{BEGUN_INDEX} WHERE operation_id IN :ids AND {BEGUN_SQL} GROUP BY operation_id"
).bindparams(sa.bindparam("ids", expanding=True))


async def _in_flight_counts(
    db: Database, conn: AsyncConnection, ids: list[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """(dispatching or awaiting, begun) sub-jobs per operation: the first from the counts table
    (`jobs.store.counts`; counting the awaiting rows of a large operation on every dispatch
    round grew with it), the second from the partial index of the few begun ones."""
    known = await counts.read(conn, ids)
    in_flight = {op_id: sum(c.get(s, 0) for s in IN_FLIGHT) for op_id, c in known.items()}
    if db.is_sqlite:
        result = await conn.execute(_BEGUN_SQLITE, {"ids": ids})
    else:
        stmt = (
            sa.select(_S.operation_id, sa.func.count())
            .where(_S.operation_id.in_(ids), begun())
            .group_by(_S.operation_id)
        )
        result = await conn.execute(stmt)
    return in_flight, {str(op_id): int(n) for op_id, n in result.all()}


async def _any(db: Database, stmt: sa.Select[tuple[object, ...]]) -> bool:
    async with db.read() as conn:
        return (await conn.execute(stmt.limit(1))).first() is not None


def _eligible(req: ClaimRequest) -> list[sa.ColumnElement[bool] | sa.TextClause]:
    eligible: list[sa.ColumnElement[bool] | sa.TextClause] = [
        _S.operation_id == req.operation_id,
        _S.rate_key == req.rate_key,
        _S.state == State.PENDING.value,
        _S.seq < req.seq_end,
        _S.not_before <= req.now,
    ]
    if req.begun_only:
        eligible.append(begun())
    return eligible


async def claim_batches(
    db: Database, req: ClaimRequest, max_batch: Sequence[int], max_groups: int
) -> list[Batch]:
    """Claim up to `max_groups` groups (each: one batch key, step and verify flag, at most
    `max_batch[step]` sub-jobs; `req.max_servers` in all) and write their call rows, in ONE
    transaction committed BEFORE any cloud call is made (write-ahead)."""
    head_stmt = sa.select(_S.batch_key, _S.step, _S.verify_first, _S.kind).where(*_eligible(req))
    if not await _any(db, head_stmt):
        return []  # most rounds find nothing: do not take SQLite's write lock for that
    batches: list[Batch] = []
    servers = req.max_servers
    async with db.write() as conn:
        if not await _still_claimable(db, conn, req):
            return []  # paused, cancelled or halted since the dispatcher listed it
        if max_batch and max(max_batch) == 1:  # one server per call: every row is a group
            return await _claim_singles(db, conn, req, min(servers, max_groups))
        uniform = await _uniform_groups(db, conn, req, max_batch, servers, max_groups)
        if uniform is not None:
            return await _write_groups(db, conn, req, uniform)
        while len(batches) < max_groups and servers > 0:
            batch = await _claim_group(db, conn, req, head_stmt, max_batch, servers)
            if batch is None:
                break
            batches.append(batch)
            servers -= len(batch.subjobs)
    return batches


async def _still_claimable(db: Database, conn: AsyncConnection, req: ClaimRequest) -> bool:
    """Re-read the operation inside the claim's transaction: a pause (or cancel) committed
    before it wins, so no server is begun, let alone sent, after `pause()` returned (a claim of
    begun sub-jobs only goes on). On PostgreSQL the row is share-locked, so a pause waits for a
    claim already under way (whose calls are then in flight) instead of slipping between its
    read and its commit."""
    stmt = sa.select(OPERATIONS.c.id).where(OPERATIONS.c.id == req.operation_id, *_runnable())
    if not req.begun_only:
        stmt = stmt.where(sa.not_(_stopped()))
    if db.is_postgres:
        stmt = stmt.with_for_update(read=True)
    return (await conn.execute(stmt)).first() is not None


async def _claim_group(
    db: Database,
    conn: AsyncConnection,
    req: ClaimRequest,
    head_stmt: sa.Select[tuple[object, ...]],
    max_batch: Sequence[int],
    servers: int,
) -> Batch | None:
    head = (await conn.execute(db.skip_locked(head_stmt.order_by(_S.seq).limit(1)))).first()
    if head is None:
        return None
    h = head._mapping
    batch_key, step, verify = str(h["batch_key"]), int(h["step"]), bool(h["verify_first"])
    cap = max_batch[min(step, len(max_batch) - 1)] if max_batch else 1
    group_stmt = (
        sa.select(SUBJOBS)
        .where(
            *_eligible(req),
            _S.batch_key == batch_key,
            _S.step == step,
            _S.verify_first.is_(verify),
        )
        .order_by(_S.seq)
        .limit(max(1, min(servers, cap)))
    )
    rows = [to_subjob(r._mapping) for r in (await conn.execute(db.skip_locked(group_stmt)))]
    if not rows:
        return None
    return await _write_ahead(conn, req, rows, str(h["kind"]), step, batch_key, verify)


async def _claim_singles(
    db: Database, conn: AsyncConnection, req: ClaimRequest, count: int
) -> list[Batch]:
    """`count` one-server groups in a few statements, however many: the per-group path took five
    round trips per group (0.7-1.0 s for the 120 calls of one window of a per-server endpoint,
    measured on SQLite), and the window's calls waited for it."""
    stmt = sa.select(SUBJOBS).where(*_eligible(req)).order_by(_S.seq).limit(count)
    rows = [to_subjob(r._mapping) for r in await conn.execute(db.skip_locked(stmt))]
    return await _write_groups(db, conn, req, [[r] for r in rows])


async def _uniform_groups(
    db: Database,
    conn: AsyncConnection,
    req: ClaimRequest,
    max_batch: Sequence[int],
    servers: int,
    max_groups: int,
) -> list[list[SubJobRecord]] | None:
    """The groups of a claim read in one statement when the claimable rows it reads share one
    batch key, step and verify flag (a campaign's usual case: one endpoint's stop, one create):
    consecutive runs of at most the step's batch size, in `seq` order, as the per-group path
    would make them one by one (five round trips a group: a window of ten BMS groups took
    0.24-0.31 s on SQLite beside other writers). None when the rows mix groups: the per-group
    path then picks each group's rows among all the claimable ones."""
    widest = max(max_batch, default=1)
    stmt = (
        sa.select(SUBJOBS)
        .where(*_eligible(req))
        .order_by(_S.seq)
        .limit(max(1, min(servers, max_groups * widest)))
    )
    rows = [to_subjob(r._mapping) for r in await conn.execute(db.skip_locked(stmt))]
    if not rows or len({(r.batch_key, r.step, r.verify_first) for r in rows}) > 1:
        return None if rows else []
    cap = max(1, max_batch[min(rows[0].step, len(max_batch) - 1)] if max_batch else 1)
    groups = [rows[i : i + cap] for i in range(0, len(rows), cap)][:max_groups]
    return groups


async def _write_groups(
    db: Database, conn: AsyncConnection, req: ClaimRequest, groups: Sequence[list[SubJobRecord]]
) -> list[Batch]:
    """Move each group's rows to DISPATCHING on a call row of its own, with their CLAIM events,
    in a few statements whatever the number of groups (committed by the caller's transaction
    before any cloud call is made). The rows are ours until commit: SQLite's write lock, or
    PostgreSQL's FOR UPDATE of the statement that read them."""
    groups = [g for g in groups if g]
    if not groups:
        return []
    calls = [
        call_row(
            operation_id=req.operation_id,
            purpose="verify" if g[0].verify_first else "submit",
            kind=g[0].kind,
            step=g[0].step,
            rate_key=req.rate_key,
            batch_key=g[0].batch_key,
            servers=[r.target_id for r in g],
            worker=req.worker,
            started_at=req.now,
        )
        for g in groups
    ]
    call_ids = await _insert_calls(db, conn, calls)
    await _move_to_calls(conn, req, groups, call_ids)
    batches: list[Batch] = []
    events: list[dict[str, object]] = []
    for group, call_id in zip(groups, call_ids, strict=True):
        first = group[0]
        bump = 0 if first.verify_first else 1
        events += transition_events(
            [Moved(r.id, r.operation_id, r.target_id, r.step, r.attempt + bump) for r in group],
            Event.CLAIM,
            State.PENDING,
            State.DISPATCHING,
            req.now,
            req.worker,
            call_id=call_id,
        )
        batches.append(
            Batch(
                operation_id=req.operation_id,
                kind=first.kind,
                step=first.step,
                rate_key=req.rate_key,
                batch_key=first.batch_key,
                params=req.params,
                subjobs=tuple(_as_claimed(r, req, call_id, bump) for r in group),
                call_id=call_id,
                verify=first.verify_first,
            )
        )
    await insert_events(conn, events)
    return batches


# SQLite: the rows of every group in one statement of our own text (two when some groups
# verify first and others send), each row's call from a CASE over the groups' ids: an
# executemany through SQLAlchemy spent 30-35 ms of a 1,000-row claim's 60-80 binding each row's
# parameters, and the driver's executemany takes the GIL back after every row, so beside a busy
# event loop each row waited its turn (D107).
_CLAIM_ROWS_SQLITE = (
    "UPDATE subjobs SET state = ?, lease_owner = ?, lease_expires_at = ?, call_id = {calls}, "
    "attempt = attempt + ?, updated_at = ?, sent_after = coalesce(?, sent_after) "
    "WHERE id IN ({ids}) AND state = ?"
)
_CLAIM_ROWS_PER_STATEMENT = (SQLITE_VARIABLES - 16) // 3  # an id twice, a call per group


# PostgreSQL: the rows of every group in ONE statement, each row's call and attempt bump from
# arrays (`unnest`), where an executemany ran one UPDATE per row (a claim of 7,580 rows sent
# 7,580). The `sent_after` floor applies to the rows whose attempt is bumped (a send, not a
# verification), as `coalesce(floor, sent_after)` does on SQLite.
_CLAIM_ROWS_PG = sa.text(
    "UPDATE subjobs SET state = :b_to, lease_owner = :b_worker, lease_expires_at = :b_until, "
    "call_id = v.call_id, attempt = subjobs.attempt + v.bump, updated_at = :b_now, "
    "sent_after = CASE WHEN v.bump = 1 THEN coalesce(CAST(:b_floor AS timestamptz), "
    "subjobs.sent_after) ELSE subjobs.sent_after END "
    "FROM unnest(CAST(:b_ids AS bigint[]), CAST(:b_calls AS bigint[]), "
    "CAST(:b_bumps AS integer[])) AS v(id, call_id, bump) "
    "WHERE subjobs.id = v.id AND subjobs.state = :b_from"
).bindparams(
    sa.bindparam("b_until", type_=UTCDateTime),
    sa.bindparam("b_now", type_=UTCDateTime),
    sa.bindparam("b_floor", type_=UTCDateTime),
)


async def _move_to_calls(
    conn: AsyncConnection,
    req: ClaimRequest,
    groups: Sequence[list[SubJobRecord]],
    call_ids: Sequence[int],
) -> None:
    """Move the groups' rows to DISPATCHING, each on its call (attempt bumped unless the group
    verifies first)."""
    rows = [
        (r.id, call_id, 0 if group[0].verify_first else 1)
        for group, call_id in zip(groups, call_ids, strict=True)
        for r in group
    ]
    pending, dispatching = State.PENDING.value, State.DISPATCHING.value
    if conn.dialect.name == "postgresql":
        ids, calls, bumps = (list(column) for column in zip(*rows, strict=True))
        params = {
            "b_worker": req.worker,
            "b_until": req.lease_until,
            "b_now": req.now,
            "b_floor": req.cloud_floor,
            "b_ids": ids,
            "b_calls": calls,
            "b_bumps": bumps,
            "b_from": pending,
            "b_to": dispatching,
        }
        await conn.execute(_CLAIM_ROWS_PG, params)
        return
    stamp = converter(_S.updated_at.type, conn.dialect)
    until, now = stamp(req.lease_until), stamp(req.now)
    for bump in (0, 1):
        moving = [(i, c) for i, c, b in rows if b == bump]
        floor = None if not bump or req.cloud_floor is None else stamp(req.cloud_floor)
        for start in range(0, len(moving), _CLAIM_ROWS_PER_STATEMENT):
            chunk = moving[start : start + _CLAIM_ROWS_PER_STATEMENT]
            by_call: dict[int, list[int]] = {}
            for i, c in chunk:
                by_call.setdefault(c, []).append(i)
            case, given = _call_case(by_call)
            sql = _CLAIM_ROWS_SQLITE.format(calls=case, ids=", ".join("?" * len(chunk)))
            values = (dispatching, req.worker, until, *given, bump, now, floor)
            await conn.exec_driver_sql(sql, (*values, *(i for i, _ in chunk), pending))


def _call_case(by_call: dict[int, list[int]]) -> tuple[str, list[object]]:
    """The SQL that gives each row its call (`CASE WHEN id IN (...) THEN call ... END`, or the
    one call), with its parameters in order."""
    if len(by_call) == 1:
        return "?", list(by_call)
    params: list[object] = []
    whens = []
    for call_id, ids in by_call.items():
        whens.append(f"WHEN id IN ({', '.join('?' * len(ids))}) THEN ?")
        params += [*ids, call_id]
    return f"CASE {' '.join(whens)} END", params


async def _insert_calls(
    db: Database, conn: AsyncConnection, calls: Sequence[dict[str, object]]
) -> list[int]:
    """The new call rows' ids, in the order given. SQLAlchemy keeps RETURNING in parameter order
    on SQLite only by sending one INSERT per row (a window of 120 one-server calls: 121 round
    trips to the driver's thread, 40-76 ms against 10 ms for one). On SQLite this transaction
    holds the database's only write lock, so the ids are allocated here, as SQLite itself would
    (the largest id + 1 onwards)."""
    if db.is_sqlite:
        top = (await conn.execute(sa.select(sa.func.max(CLOUD_CALLS.c.id)))).scalar()
        first = int(top or 0) + 1
        ids = list(range(first, first + len(calls)))
        rows = [{**c, "id": i} for c, i in zip(calls, ids, strict=True)]
        await conn.execute(CLOUD_CALLS.insert(), rows)
        return ids
    insert = CLOUD_CALLS.insert().returning(CLOUD_CALLS.c.id, sort_by_parameter_order=True)
    return [int(i) for i in (await conn.execute(insert, calls)).scalars()]


def _as_claimed(row: SubJobRecord, req: ClaimRequest, call_id: int, bump: int) -> SubJobRecord:
    """`row` as a claim leaves it: DISPATCHING, leased to the worker, on its call."""
    return replace(
        row,
        state=State.DISPATCHING,
        lease_owner=req.worker,
        lease_expires_at=req.lease_until,
        call_id=call_id,
        attempt=row.attempt + bump,
        updated_at=req.now,
        sent_after=req.cloud_floor if bump and req.cloud_floor else row.sent_after,
    )


async def _insert_call(
    conn: AsyncConnection,
    req: ClaimRequest,
    rows: list[SubJobRecord],
    batch_key: str,
    verify: bool,
) -> int:
    call = call_row(
        operation_id=req.operation_id,
        purpose="verify" if verify else "submit",
        kind=rows[0].kind,
        step=rows[0].step,
        rate_key=req.rate_key,
        batch_key=batch_key,
        servers=[r.target_id for r in rows],
        worker=req.worker,
        started_at=req.now,
    )
    stmt = CLOUD_CALLS.insert().values(**call).returning(CLOUD_CALLS.c.id)
    return int((await conn.execute(stmt)).scalar_one())


async def _write_ahead(
    conn: AsyncConnection,
    req: ClaimRequest,
    rows: list[SubJobRecord],
    kind: str,
    step: int,
    batch_key: str,
    verify: bool,
) -> Batch | None:
    """Move the group to DISPATCHING with its call row and CLAIM events (committed by the
    caller's transaction before any cloud call is made)."""
    call_id = await _insert_call(conn, req, rows, batch_key, verify)
    bump = 0 if verify else 1
    stmt = (
        sa.update(SUBJOBS)
        .where(ids_in(_S.id, [r.id for r in rows], conn.dialect.name))
        .where(_S.state == State.PENDING.value)
        .values(
            state=State.DISPATCHING.value,
            lease_owner=req.worker,
            lease_expires_at=req.lease_until,
            call_id=call_id,
            attempt=_S.attempt + bump,
            updated_at=req.now,
            sent_after=_S.sent_after if verify or req.cloud_floor is None else req.cloud_floor,
        )
        .returning(*MOVED_COLUMNS)
    )
    claimed = moved((await conn.execute(stmt)).all())
    events = transition_events(
        claimed,
        Event.CLAIM,
        State.PENDING,
        State.DISPATCHING,
        req.now,
        req.worker,
        call_id=call_id,
    )
    await insert_events(conn, events)
    got = {m.id for m in claimed}
    subjobs = tuple(_as_claimed(r, req, call_id, bump) for r in rows if r.id in got)
    calls = sa.update(CLOUD_CALLS).where(CLOUD_CALLS.c.id == call_id)
    if not subjobs:  # every row moved meanwhile: no call will be made
        await conn.execute(sa.delete(CLOUD_CALLS).where(CLOUD_CALLS.c.id == call_id))
        return None
    if len(subjobs) < len(rows):
        await conn.execute(calls.values(servers=[s.target_id for s in subjobs]))
    return Batch(
        operation_id=req.operation_id,
        kind=kind,
        step=step,
        rate_key=req.rate_key,
        batch_key=batch_key,
        params=req.params,
        subjobs=subjobs,
        call_id=call_id,
        verify=verify,
    )


async def claim_polls(
    db: Database,
    worker: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
    due_by: datetime | None = None,
) -> list[SubJobRecord]:
    """Lease the AWAITING rows due at `now` whose lease is free at `now`, for one poll round (a
    lease, not a transition); with `due_by`, also a cloud job's rows due by then (the poller
    leases a job's poll a little ahead and sends it at its time, `EngineConfig.poll_ahead`; a
    job's rows fall due together, where job-less rows of one group may fall due apart)."""
    due = _S.not_before <= now
    if due_by is not None and due_by > now:
        due = sa.and_(
            _S.not_before <= due_by,
            sa.or_(_S.not_before <= now, sa.func.coalesce(_S.cloud_job_id, "") != ""),
        )
    stmt = (
        sa.select(SUBJOBS)
        .where(
            _S.state == State.AWAITING.value,
            due,
            sa.or_(_S.lease_owner.is_(None), _S.lease_expires_at < now),
        )
        .order_by(*_POLL_ORDER)
        .limit(limit)
    )
    if db.is_postgres:
        return await _lease_polls_pg(db, stmt, worker, lease_until)
    if not await _any(db, stmt):
        return []
    async with db.write() as conn:
        rows = [to_subjob(r._mapping) for r in (await conn.execute(db.skip_locked(stmt))).all()]
        if not rows:
            return []
        await conn.execute(
            sa.update(SUBJOBS)
            .where(ids_in(_S.id, [r.id for r in rows], conn.dialect.name))
            .where(_S.state == State.AWAITING.value)
            .values(lease_owner=worker, lease_expires_at=lease_until)
        )
    return [replace(r, lease_owner=worker, lease_expires_at=lease_until) for r in rows]


_POLL_ORDER = (_S.not_before, _S.cloud_job_id, _S.id)


async def _lease_polls_pg(
    db: Database, due: sa.Select[tuple[object, ...]], worker: str, lease_until: datetime
) -> list[SubJobRecord]:
    """PostgreSQL: the rows are picked (`FOR UPDATE SKIP LOCKED`), leased and returned by ONE
    statement, its own transaction: one round trip whether or not anything is due, where a
    probe, then BEGIN, the locking SELECT, the UPDATE and COMMIT took five, and the rows were
    written twice (their lock, then their lease)."""
    # the ids as one array an InitPlan reads once, then the rows by their primary key: a join
    # with the picked rows was planned from the statistics, which a table filled and changed
    # faster than autovacuum analyses it can lack (a nested loop over both: seconds)
    picked = due.with_only_columns(_S.id).with_for_update(skip_locked=True).scalar_subquery()
    stmt = (
        sa.update(SUBJOBS)
        .where(_S.id == sa.any_(sa.func.array(picked)), _S.state == State.AWAITING.value)
        .values(lease_owner=worker, lease_expires_at=lease_until)
        .returning(*SUBJOBS.c)
    )
    async with db.autocommit() as conn:
        rows = [to_subjob(r._mapping) for r in await conn.execute(stmt)]
    rows.sort(key=lambda r: (r.not_before, r.cloud_job_id is None, r.cloud_job_id or "", r.id))
    return rows  # in the order the probe's SELECT read them (NULL job ids last)


def _group_key(change: Change) -> Hashable:
    """Changes with equal keys are applied by one UPDATE. The values themselves (with their
    types, so that 1 and True differ) when they can be hashed; else their JSON (a memo is a
    dict): two `json.dumps` per change were a fifth of recording a 1,000-server poll."""
    head = (change.from_state, change.event, change.code, change.message)
    try:
        values = tuple((k, type(v), v) for k, v in change.values)
        hash(values)
    except TypeError:
        dumped = json.dumps([[k, v] for k, v in change.values], default=str, sort_keys=True)
        return (*head, dumped)
    return (*head, values)


async def apply(
    db: Database, changes: Sequence[Change], worker: str, now: datetime, call: CallResult | None
) -> Applied:
    """Apply one call's (or poll's) outcomes; see `apply_many`."""
    return (await apply_many(db, [(changes, call)], worker, now))[0]


async def apply_many(
    db: Database,
    items: Sequence[tuple[Sequence[Change], CallResult | None]],
    worker: str,
    now: datetime,
) -> list[Applied]:
    """Apply the outcomes of several calls in ONE transaction: per call, one compare-and-set
    UPDATE per group of identical changes (the changes of their own, of every call together:
    `jobs.store.singles`), their event rows and the call's row; then the operations'
    consequences once. Returns one `Applied` per item (operation-level results on
    the last one)."""
    for changes, _ in items:
        for change in changes:
            unknown = {k for k, _ in change.values} - SETTABLE
            if unknown:
                raise ValueError(f"cannot set {sorted(unknown)} through a change")
    op_ids = sorted({c.operation_id for changes, _ in items for c in changes})
    results: list[Applied] = []
    async with db.write() as conn:
        await db.lock_operations(conn, op_ids)
        events: list[dict[str, object]] = []
        # changes of their own (one-server calls, a poll's per-server results) go together
        aside: list[Single] | None = [] if each_row_once(items) else None
        for index, (changes, call) in enumerate(items):
            results.append(
                await _apply_changes(conn, changes, worker, now, call, events, (aside, index))
            )
        for index, more in (await apply_singles(conn, aside, worker, now, events)).items():
            results[index] = Applied(
                results[index].applied + more.applied, results[index].lost + more.lost
            )
        await _finish_calls(conn, [call for _, call in items if call is not None], now)
        await insert_events(conn, events)
        await _add_rate_keys(conn, [c for changes, _ in items for c in changes])
        settled = await settle(conn, op_ids, now, worker)
    if results:
        last = results[-1]
        results[-1] = Applied(last.applied, last.lost, settled.halted, settled.finished)
    return results


async def _apply_changes(
    conn: AsyncConnection,
    changes: Sequence[Change],
    worker: str,
    now: datetime,
    call: CallResult | None,
    events: list[dict[str, object]],
    aside: tuple[list[Single] | None, int] = (None, 0),
) -> Applied:
    """Apply one item's changes: one UPDATE per group of identical changes; a change of its own
    goes to `aside` (with the item's index) when given, to be applied with the others."""
    groups: dict[Hashable, list[Change]] = {}
    if len(changes) == 1:  # one server per call: nothing to group
        groups[""] = [changes[0]]
    else:
        for change in changes:
            groups.setdefault(_group_key(change), []).append(change)
    applied, lost = 0, []
    singles, index = aside
    for group in groups.values():
        first = group[0]
        if singles is not None and len(group) == 1:
            singles.append((index, first, call))
            continue
        to_state, on_call, params = move_params(first, worker, now, call)
        ids = [c.subjob_id for c in group]
        stmt = _move_stmt(tuple(k for k, _ in first.values), on_call is not None, conn.dialect.name)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            rows = moved((await conn.execute(stmt, {**params, "m_ids": chunk})).all())
            applied += len(rows)
            lost += sorted(set(chunk) - {r.id for r in rows})
            if first.event is not None:
                events += transition_events(
                    rows,
                    first.event,
                    first.from_state,
                    to_state,
                    now,
                    worker,
                    code=first.code,
                    message=first.message,
                    call_id=None if call is None else call.call_id,
                )
    return Applied(applied, tuple(lost))


@functools.lru_cache(maxsize=128)
def _move_stmt(keys: tuple[str, ...], on_call: bool, dialect: str) -> sa.Update:
    """The compare-and-set UPDATE of a group of changes setting `keys` (and, `on_call`, only on
    rows still on the call `m_call`), built once per variant (SQLAlchemy's statement
    construction was a third of the recorder's CPU per call). On PostgreSQL the ids are one
    array parameter (`jobs.store.base.ids_in`)."""
    ids = (
        _S.id == sa.any_(sa.bindparam("m_ids", type_=PG_IDS))
        if dialect == "postgresql"
        else _S.id.in_(sa.bindparam("m_ids", expanding=True))
    )
    return compare_and_set(ids, keys, on_call).returning(*MOVED_COLUMNS)


async def _add_rate_keys(conn: AsyncConnection, changes: Sequence[Change]) -> None:
    """A step that moves to another API (Advance with a rate key) makes the operation's
    dispatching look at that key too."""
    wanted: dict[str, set[str]] = {}
    for change in changes:
        key = change.value("rate_key")
        if isinstance(key, str):
            wanted.setdefault(change.operation_id, set()).add(key)
    for op_id, keys in wanted.items():
        stmt = sa.select(OPERATIONS.c.rate_keys).where(OPERATIONS.c.id == op_id)
        current = {str(k) for k in (await conn.execute(stmt)).scalar_one() or ()}
        if not keys <= current:
            await conn.execute(
                sa.update(OPERATIONS)
                .where(OPERATIONS.c.id == op_id)
                .values(rate_keys=sorted(current | keys))
            )


_FINISH_CALL = (
    sa.update(CLOUD_CALLS)
    .where(CLOUD_CALLS.c.id == sa.bindparam("c_id"))
    .values(
        finished_at=sa.bindparam("c_now"),
        outcome=sa.bindparam("c_outcome"),
        cloud_job_id=sa.bindparam("c_job"),
        request_id=sa.bindparam("c_request"),
        error_code=sa.bindparam("c_code"),
        error_message=sa.bindparam("c_message"),
    )
)


async def _finish_calls(conn: AsyncConnection, calls: Sequence[CallResult], now: datetime) -> None:
    """Every answered call's row, in one executemany (a statement per call was a third of
    recording one-server calls)."""
    if not calls:
        return
    await conn.execute(
        _FINISH_CALL,
        [
            {
                "c_id": call.call_id,
                "c_now": now,
                "c_outcome": call.outcome,
                "c_job": call.cloud_job_id,
                "c_request": call.request_id,
                "c_code": call.error_code,
                "c_message": call.error_message,
            }
            for call in calls
        ],
    )
