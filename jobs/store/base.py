"""Shared pieces of the store: row -> record conversion, event rows, operation row helpers.

The store's SQL is split by concern so that no module grows past a readable size: `job_store`
(the facade), `ops` (operations), `planning`, `claims` (claim and apply), `leases` (reap, recover,
heartbeats, named leases), `settle` (operation consequences) and this module. Nothing else in the
engine touches SQLAlchemy.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from jobs.approval import Approval, ApprovalRules, Decision
from jobs.errors import NotFound
from jobs.records import (
    CloudCallRecord,
    EventRecord,
    OperationRecord,
    PlanSummary,
    SubJobRecord,
)
from jobs.states import Event, State
from jobs.store import counts
from jobs.store.db import event_listeners
from jobs.store.models import CLOUD_CALLS, EVENTS, OPERATIONS, SUBJOBS
from jobs.store.notify import notify_for_events
from jobs.strategy import BlastRadius, Strategy
from jobs.types import JSONMapping

PG_IDS = postgresql.ARRAY(sa.BigInteger)
CHUNK = 2_000  # rows per executemany (PostgreSQL caps a statement at 32,767 parameters)
# parameters of one SQLite statement (SQLITE_MAX_VARIABLE_NUMBER: 32,766 since 3.32, 999 before)
SQLITE_VARIABLES = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999


def _json(value: object) -> JSONMapping:
    return cast(JSONMapping, value if isinstance(value, dict) else {})


def _approval(m: RowMapping) -> Approval | None:
    if m["approval_reason"] is None or m["approval_expires_at"] is None:
        return None
    decision = m["approval_decision"]
    return Approval(
        reason=m["approval_reason"],
        expires_at=m["approval_expires_at"],
        decision=None if decision is None else Decision(decision),
        decided_by=m["approval_by"],
        decided_at=m["approval_at"],
        note=m["approval_note"],
    )


def pending_approval() -> sa.ColumnElement[bool]:
    """An operation that waits for an approval (`jobs.approval`): nothing of it is dispatched."""
    c = OPERATIONS.c
    return sa.and_(c.approval_reason.is_not(None), c.approval_decision.is_(None))


def to_operation(m: RowMapping) -> OperationRecord:
    guard = m["guard"]
    summary = m["summary"]
    rules = m["approval_rules"]
    return OperationRecord(
        id=m["id"],
        kind=m["kind"],
        params=_json(m["params"]),
        selector=_json(m["selector"]),
        strategy=Strategy.from_json(_json(m["strategy"])),
        guard=None if guard is None else BlastRadius.from_json(_json(guard)),
        dry_run=m["dry_run"],
        reason=m["reason"],
        created_by=m["created_by"],
        idempotency_key=m["idempotency_key"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        planned_at=m["planned_at"],
        refused_reason=m["refused_reason"],
        plan_attempts=m["plan_attempts"],
        targets=m["targets"],
        skipped=m["skipped"],
        rate_keys=tuple(str(k) for k in m["rate_keys"] or ()),
        summary=None if summary is None else PlanSummary.from_json(_json(summary)),
        current_wave=m["current_wave"],
        paused=m["paused"],
        cancel_requested=m["cancel_requested"],
        cancelled_by=m["cancelled_by"],
        halted_reason=m["halted_reason"],
        finished_at=m["finished_at"],
        approval_rules=None if rules is None else ApprovalRules.from_json(_json(rules)),
        approval=_approval(m),
    )


def to_subjob(m: RowMapping) -> SubJobRecord:
    memo = m["memo"]
    return SubJobRecord(
        id=m["id"],
        operation_id=m["operation_id"],
        seq=m["seq"],
        target_id=m["target_id"],
        kind=m["kind"],
        rate_key=m["rate_key"],
        batch_key=m["batch_key"],
        payload=_json(m["payload"]),
        memo=None if memo is None else _json(memo),
        state=State(m["state"]),
        step=m["step"],
        attempt=m["attempt"],
        throttles=m["throttles"],
        throttled_since=m["throttled_since"],
        not_before=m["not_before"],
        verify_first=m["verify_first"],
        begun=m["begun"],
        cloud_job_id=m["cloud_job_id"],
        request_id=m["request_id"],
        accepted_at=m["accepted_at"],
        error_code=m["error_code"],
        error_message=m["error_message"],
        reason=m["reason"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        call_id=m["call_id"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        sent_after=m["sent_after"],
    )


def to_event(m: RowMapping) -> EventRecord:
    return EventRecord(
        id=m["id"],
        operation_id=m["operation_id"],
        subjob_id=m["subjob_id"],
        target_id=m["target_id"],
        event=m["event"],
        from_state=None if m["from_state"] is None else State(m["from_state"]),
        to_state=None if m["to_state"] is None else State(m["to_state"]),
        step=m["step"],
        attempt=m["attempt"],
        code=m["code"],
        message=m["message"],
        worker=m["worker"],
        call_id=m["call_id"],
        at=m["at"],
    )


def to_call(m: RowMapping) -> CloudCallRecord:
    return CloudCallRecord(
        id=m["id"],
        operation_id=m["operation_id"],
        purpose=m["purpose"],
        kind=m["kind"],
        step=m["step"],
        rate_key=m["rate_key"],
        batch_key=m["batch_key"],
        servers=tuple(str(s) for s in m["servers"]),
        worker=m["worker"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        cloud_job_id=m["cloud_job_id"],
        request_id=m["request_id"],
        outcome=m["outcome"],
        error_code=m["error_code"],
        error_message=m["error_message"],
    )


@dataclass(frozen=True)
class Moved:
    """A sub-job a bulk UPDATE ... RETURNING moved (what its event row needs)."""

    id: int
    operation_id: str
    target_id: str
    step: int
    attempt: int


MOVED_COLUMNS = (
    SUBJOBS.c.id,
    SUBJOBS.c.operation_id,
    SUBJOBS.c.target_id,
    SUBJOBS.c.step,
    SUBJOBS.c.attempt,
)


def moved(rows: Iterable[Sequence[object]]) -> list[Moved]:
    """Rows selected with `MOVED_COLUMNS`, as values."""
    return [
        Moved(int(str(r[0])), str(r[1]), str(r[2]), int(str(r[3])), int(str(r[4]))) for r in rows
    ]


def transition_events(
    rows: Sequence[Moved],
    event: Event,
    from_state: State,
    to_state: State,
    now: datetime,
    worker: str | None,
    *,
    code: str | None = None,
    message: str | None = None,
    call_id: int | None = None,
) -> list[dict[str, object]]:
    return [
        {
            "operation_id": r.operation_id,
            "subjob_id": r.id,
            "target_id": r.target_id,
            "event": event.value,
            "from_state": from_state.value,
            "to_state": to_state.value,
            "step": r.step,
            "attempt": r.attempt,
            "code": code,
            "message": message,
            "worker": worker,
            "call_id": call_id,
            "at": now,
        }
        for r in rows
    ]


def operation_event(
    operation_id: str,
    name: str,
    now: datetime,
    *,
    worker: str | None = None,
    code: str | None = None,
    message: str | None = None,
) -> dict[str, object]:
    return {
        "operation_id": operation_id,
        "subjob_id": None,
        "target_id": None,
        "event": f"operation.{name}",
        "from_state": None,
        "to_state": None,
        "step": None,
        "attempt": None,
        "code": code,
        "message": message,
        "worker": worker,
        "call_id": None,
        "at": now,
    }


EVENT_CHUNK = 10_000
_EVENT_TYPES = {
    "operation_id": "varchar",
    "subjob_id": "bigint",
    "target_id": "varchar",
    "event": "varchar",
    "from_state": "varchar",
    "to_state": "varchar",
    "step": "integer",
    "attempt": "integer",
    "code": "varchar",
    "message": "text",
    "worker": "varchar",
    "call_id": "bigint",
    "at": "timestamptz",
}
_EVENT_COLUMNS = tuple(_EVENT_TYPES)
# PostgreSQL: one INSERT of a column array each (`unnest`), the same statement text whatever the
# number of rows, so it is prepared once; an executemany sent one INSERT per row (150,000 of
# them in a 50,000-server run). Constants of this module only; the values are bound.
_UNNEST_EVENTS = sa.text(
    "INSERT INTO events ({}) SELECT * FROM unnest({})".format(  # noqa: S608
        ", ".join(_EVENT_COLUMNS),
        ", ".join(f"CAST(:{c} AS {t}[])" for c, t in _EVENT_TYPES.items()),
    )
)


async def insert_events(conn: AsyncConnection, rows: Sequence[Mapping[str, object]]) -> None:
    """Write event rows, move the operations' per-state counts by the transitions among them
    (`jobs.store.counts`: every state change of a sub-job has its event row), then hand the rows
    to the database's listeners (the webhook outbox) in this transaction."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        for start in range(0, len(rows), EVENT_CHUNK):
            chunk = rows[start : start + EVENT_CHUNK]
            await conn.execute(_UNNEST_EVENTS, {c: [r[c] for r in chunk] for c in _EVENT_COLUMNS})
    else:
        await insert_rows(conn, EVENTS, rows)
    await counts.add(conn, counts.from_events(rows))
    await notify_for_events(conn, rows)  # other processes' loops: new work (PostgreSQL)
    for listener in event_listeners(conn):
        await listener(conn, rows)


async def insert_rows(
    conn: AsyncConnection, table: sa.Table, values: Sequence[Mapping[str, object]]
) -> None:
    """SQLite: the rows in multi-row `INSERT ... VALUES (...), (...)` statements of our own text,
    each value converted by its column's own bind processor (what SQLAlchemy itself would send;
    its compiled multi-row pages took 0.30-0.35 s of CPU for 5,000 planned rows, D93). Values
    shared by the rows (the timestamps) are converted once. Every row has the first row's keys.

    One statement, not an executemany: the driver runs an executemany in its thread and takes
    the GIL back after every row's step, so while the event loop is busy (a listing's pages
    decoded) each row waited its turn; 1,000 rows took 2 ms alone and 2-800 ms beside a busy
    thread, where one statement of the same rows took 1.3 ms and 17-28 ms (D107)."""
    dialect = conn.dialect
    columns = [c.name for c in table.columns if c.name in values[0]]  # the statement's order
    converters = [_memo(table.c[name].type, dialect) for name in columns]
    # the dialect's own text for one row: `INSERT INTO t (...) VALUES (?, ...)`
    head, row = str(table.insert().compile(dialect=dialect, column_keys=columns)).split(" VALUES ")
    per = max(1, min(CHUNK, SQLITE_VARIABLES // len(columns)))
    for start in range(0, len(values), per):
        chunk = values[start : start + per]
        flat = tuple(
            v[c] if f is None else f(v[c])
            for v in chunk
            for c, f in zip(columns, converters, strict=True)
        )
        await conn.exec_driver_sql(f"{head} VALUES {', '.join([row] * len(chunk))}", flat)


def converter(
    type_: sa.types.TypeEngine[object], dialect: sa.Dialect
) -> Callable[[object], object]:
    """The column type's bind processor: a value as SQLAlchemy itself would send it."""
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    return (lambda value: value) if process is None else process


def _memo(
    type_: sa.types.TypeEngine[object], dialect: sa.Dialect
) -> Callable[[object], object] | None:
    """The column's bind processor (None: values go as they are); for other than JSON columns
    it remembers what it converted (the rows of one insert share their timestamps)."""
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    if process is None or isinstance(type_, sa.JSON):
        return process
    done: dict[object, object] = {}

    def convert(value: object) -> object:
        if value not in done:
            done[value] = process(value)
        return done[value]

    return convert


def ids_in(
    column: sa.ColumnElement[int], ids: Sequence[int], dialect: str
) -> sa.ColumnElement[bool]:
    """`column IN ids`. On PostgreSQL ``= ANY(:array)``: one statement text whatever the number
    of ids, prepared once, where an IN list of 1,000 parameters was a new statement to parse and
    plan for every different length."""
    if dialect == "postgresql":
        return column == sa.any_(sa.literal(list(ids), type_=PG_IDS))
    return column.in_(list(ids))


async def operation_row(conn: AsyncConnection, operation_id: str) -> RowMapping:
    row = (await conn.execute(sa.select(OPERATIONS).where(OPERATIONS.c.id == operation_id))).first()
    if row is None:
        raise NotFound(f"operation {operation_id} not found")
    return row._mapping


async def update_operation(conn: AsyncConnection, operation_id: str, **values: object) -> None:
    await conn.execute(
        sa.update(OPERATIONS).where(OPERATIONS.c.id == operation_id).values(**values)
    )


def call_row(**values: object) -> dict[str, object]:
    """A `cloud_calls` insert row (keeps the column list in one place)."""
    keys = {c.name for c in CLOUD_CALLS.columns} - {"id"}
    unknown = set(values) - keys
    if unknown:
        raise ValueError(f"unknown cloud_calls columns: {sorted(unknown)}")
    return {k: values.get(k) for k in keys}
