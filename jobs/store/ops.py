"""Operation-level SQL: create (idempotent), read, page, and control (cancel, pause, resume;
retry-failed is in `requeue`). Part of the store (see `jobs.store`, the facade the rest of the
engine uses).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from jobs.errors import Conflict, IdempotencyConflict, InvalidSpec
from jobs.records import (
    EventRecord,
    NewOperation,
    OperationRecord,
    OperationView,
    Page,
    SubJobRecord,
)
from jobs.states import State, derive_operation_state
from jobs.store import counts as store_counts
from jobs.store.base import (
    insert_events,
    operation_event,
    operation_row,
    to_event,
    to_operation,
    to_subjob,
    update_operation,
)
from jobs.store.db import Database
from jobs.store.models import EVENTS, OPERATIONS, SUBJOBS
from jobs.store.settle import settle
from jobs.store.streaming import end_cancelled_listing
from jobs.types import JSONValue


def _normal(value: object) -> JSONValue:
    return cast(JSONValue, json.loads(json.dumps(value, sort_keys=True)))


async def _by_key(db: Database, key: str) -> sa.RowMapping | None:
    async with db.read() as conn:
        stmt = sa.select(OPERATIONS).where(OPERATIONS.c.idempotency_key == key)
        row = (await conn.execute(stmt)).first()
    return None if row is None else row._mapping


def _same_request(row: sa.RowMapping, new: NewOperation) -> OperationRecord:
    if _normal(row["fingerprint"]) != _normal(new.fingerprint()):
        raise IdempotencyConflict(
            f"idempotency key {new.idempotency_key!r} was used for a different request"
        )
    return to_operation(row)


async def create_operation(
    db: Database, new: NewOperation, now: datetime
) -> tuple[OperationRecord, bool]:
    """Insert the operation, or return the one created earlier with the same idempotency key."""
    key = new.idempotency_key
    if key is not None and (existing := await _by_key(db, key)) is not None:
        return _same_request(existing, new), False
    row: dict[str, object] = {
        "id": uuid.uuid4().hex,
        "kind": new.kind,
        "params": _normal(dict(new.params)),
        "selector": _normal(dict(new.selector)),
        "strategy": new.strategy.to_json(),
        "guard": None if new.guard is None else new.guard.to_json(),
        "fingerprint": _normal(new.fingerprint()),
        "dry_run": new.dry_run,
        "reason": new.reason,
        "created_by": new.created_by,
        "idempotency_key": key,
        "created_at": now,
        "updated_at": now,
        "plan_attempts": 0,
        "targets": 0,
        "skipped": 0,
        "rate_keys": [],
        "current_wave": 0,
        "paused": False,
        "cancel_requested": False,
        "approval_rules": None if new.approval is None else new.approval.to_json(),
    }
    try:
        async with db.write() as conn:
            await conn.execute(OPERATIONS.insert().values(**row))
            created = operation_event(
                str(row["id"]), "created", now, worker=new.created_by, message=new.reason or None
            )
            await insert_events(conn, [created])
            stored = await operation_row(conn, str(row["id"]))
    except IntegrityError:
        if key is None or (existing := await _by_key(db, key)) is None:
            raise
        return _same_request(existing, new), False
    return to_operation(stored), True


async def _get(conn: AsyncConnection, operation_id: str) -> OperationRecord | None:
    stmt = sa.select(OPERATIONS).where(OPERATIONS.c.id == operation_id)
    row = (await conn.execute(stmt)).first()
    return None if row is None else to_operation(row._mapping)


async def get_operation(db: Database, operation_id: str) -> OperationRecord | None:
    async with db.read() as conn:
        return await _get(conn, operation_id)


def _encode(created_at: datetime, operation_id: str) -> str:
    raw = f"{created_at.isoformat()}|{operation_id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, op_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(stamp), op_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidSpec("cursor", "not a cursor this server returned") from None


async def _list(conn: AsyncConnection, cursor: str | None, limit: int) -> Page[OperationRecord]:
    limit = max(1, limit)
    stmt = sa.select(OPERATIONS).order_by(OPERATIONS.c.created_at.desc(), OPERATIONS.c.id.desc())
    if cursor:
        stamp, op_id = _decode(cursor)
        key = sa.tuple_(OPERATIONS.c.created_at, OPERATIONS.c.id)
        stmt = stmt.where(
            key < sa.tuple_(sa.literal(stamp, OPERATIONS.c.created_at.type), sa.literal(op_id))
        )
    rows = (await conn.execute(stmt.limit(limit + 1))).all()
    items = tuple(to_operation(r._mapping) for r in rows[:limit])
    more = len(rows) > limit
    return Page(items, _encode(items[-1].created_at, items[-1].id) if more and items else None)


async def list_operations(db: Database, cursor: str | None, limit: int) -> Page[OperationRecord]:
    """Newest first, keyset-paged on (created_at, id)."""
    async with db.read() as conn:
        return await _list(conn, cursor, limit)


async def _counts(
    conn: AsyncConnection, operation_ids: Sequence[str]
) -> dict[str, dict[State, int]]:
    return await store_counts.read(conn, operation_ids)


async def counts(db: Database, operation_ids: Sequence[str]) -> dict[str, dict[State, int]]:
    async with db.read() as conn:
        return await _counts(conn, operation_ids)


def _view(op: OperationRecord, counts: dict[State, int]) -> OperationView:
    return OperationView(op, counts, derive_operation_state(counts, op.flags))


async def get_view(db: Database, operation_id: str) -> OperationView | None:
    """The operation and its counts from ONE snapshot (a finished operation never shows
    counts from before its last transition, nor the reverse)."""
    async with db.read(snapshot=True) as conn:
        op = await _get(conn, operation_id)
        if op is None:
            return None
        return _view(op, (await _counts(conn, [op.id]))[op.id])


async def list_views(db: Database, cursor: str | None, limit: int) -> Page[OperationView]:
    async with db.read(snapshot=True) as conn:
        page = await _list(conn, cursor, limit)
        counts = await _counts(conn, [op.id for op in page.items])
    return Page(tuple(_view(op, counts[op.id]) for op in page.items), page.next_cursor)


async def list_subjobs(
    db: Database, operation_id: str, state: State | None, cursor: str | None, limit: int
) -> Page[SubJobRecord]:
    """Plan order (skipped first), keyset-paged on seq, optionally one state only."""
    limit = max(1, limit)
    stmt = sa.select(SUBJOBS).where(SUBJOBS.c.operation_id == operation_id)
    if state is not None:
        stmt = stmt.where(SUBJOBS.c.state == state.value)
    if cursor:
        try:
            after = int(cursor)
        except ValueError:
            raise InvalidSpec("cursor", "not a cursor this server returned") from None
        stmt = stmt.where(SUBJOBS.c.seq > after)
    async with db.read() as conn:
        rows = (await conn.execute(stmt.order_by(SUBJOBS.c.seq).limit(limit + 1))).all()
    items = tuple(to_subjob(r._mapping) for r in rows[:limit])
    more = len(rows) > limit
    return Page(items, str(items[-1].seq) if more and items else None)


async def _events(
    conn: AsyncConnection, operation_id: str, after: int, limit: int
) -> list[EventRecord]:
    stmt = (
        sa.select(EVENTS)
        .where(EVENTS.c.operation_id == operation_id, EVENTS.c.id > after)
        .order_by(EVENTS.c.id)
        .limit(max(1, limit))
    )
    return [to_event(r._mapping) for r in (await conn.execute(stmt)).all()]


async def list_events(db: Database, operation_id: str, after: int, limit: int) -> list[EventRecord]:
    async with db.read() as conn:
        return await _events(conn, operation_id, after, limit)


async def follow(
    db: Database, operation_id: str, after: int, limit: int
) -> tuple[list[EventRecord], OperationView] | None:
    """The history after event id `after` (at most `limit` rows) and the operation's view, from
    ONE snapshot: when fewer than `limit` rows come back, the view is the operation exactly as
    of the last of them (every change of its counts or state has its history row, written in
    the same transaction), so a reader that numbers what it sends by history position never
    sends a view older, or newer, than that position."""
    async with db.read(snapshot=True) as conn:
        op = await _get(conn, operation_id)
        if op is None:
            return None
        view = _view(op, (await _counts(conn, [op.id]))[op.id])
        return await _events(conn, operation_id, after, limit), view


def _check_controllable(row: sa.RowMapping, verb: str) -> None:
    if row["refused_reason"] is not None:
        raise Conflict(f"cannot {verb}: the operation was refused")
    if row["dry_run"]:
        raise Conflict(f"cannot {verb}: the operation is a dry run")
    if row["finished_at"] is not None:
        raise Conflict(f"cannot {verb}: the operation has finished")


async def cancel(db: Database, operation_id: str, by: str, now: datetime) -> OperationRecord:
    """Cancel: nothing new is sent, pending sub-jobs become CANCELLED, calls in flight finish."""
    async with db.write() as conn:
        await db.lock_operations(conn, [operation_id])
        row = await operation_row(conn, operation_id)
        if row["cancel_requested"]:
            return to_operation(row)
        _check_controllable(row, "cancel")
        await update_operation(
            conn, operation_id, cancel_requested=True, cancelled_by=by, updated_at=now
        )
        await insert_events(conn, [operation_event(operation_id, "cancelled", now, worker=by)])
        planning = row["plan_owner"] is not None and row["plan_lease_expires_at"] >= now
        if row["planned_at"] is None and not planning:
            await update_operation(
                conn, operation_id, planned_at=now, plan_owner=None, plan_lease_expires_at=None
            )
        elif row["summary"] is None and not planning:  # open to dispatch, its listing waits
            await end_cancelled_listing(conn, row, now)
        await settle(conn, [operation_id], now, by)
        return to_operation(await operation_row(conn, operation_id))


async def set_paused(
    db: Database, operation_id: str, paused: bool, by: str, now: datetime
) -> OperationRecord:
    async with db.write() as conn:
        await db.lock_operations(conn, [operation_id])
        row = await operation_row(conn, operation_id)
        verb = "pause" if paused else "resume"
        _check_controllable(row, verb)
        if row["cancel_requested"]:
            raise Conflict(f"cannot {verb}: the operation was cancelled")
        if row["paused"] != paused:
            await update_operation(conn, operation_id, paused=paused, updated_at=now)
            name = "paused" if paused else "resumed"
            await insert_events(conn, [operation_event(operation_id, name, now, worker=by)])
        elif paused:
            return to_operation(row)
        if not paused:
            await settle(conn, [operation_id], now, by, resuming=True)
        return to_operation(await operation_row(conn, operation_id))
