"""Operations as a feed, for readers that follow what the engine did (part of the store).

`finished_after` pages through finished operations in the order they finished (keyset on
`(finished_at, id)`, served by `ix_operations_finished`), so a reader keeps a watermark and sees
each finished operation once. `unfinished` lists the operations of some kinds that may still act.
Dry runs and refused operations never act and are left out of both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from jobs.records import OperationRecord
from jobs.store.base import to_operation
from jobs.store.db import Database
from jobs.store.models import OPERATIONS

_O = OPERATIONS.c


def _acting() -> sa.ColumnElement[bool]:
    return sa.and_(_O.dry_run.is_(False), _O.refused_reason.is_(None))


async def finished_after(
    db: Database, after: tuple[datetime, str] | None, limit: int
) -> list[OperationRecord]:
    """Finished operations after the keyset `after` (finished_at, id), oldest first."""
    stmt = sa.select(OPERATIONS).where(_O.finished_at.is_not(None), _acting())
    if after is not None:
        at, op_id = after
        stmt = stmt.where(sa.or_(_O.finished_at > at, sa.and_(_O.finished_at == at, _O.id > op_id)))
    stmt = stmt.order_by(_O.finished_at, _O.id).limit(max(1, limit))
    async with db.read() as conn:
        return [to_operation(r._mapping) for r in (await conn.execute(stmt)).all()]


async def unfinished(db: Database, kinds: Sequence[str]) -> list[OperationRecord]:
    """Operations of `kinds` that have not finished (they may still act)."""
    stmt = sa.select(OPERATIONS).where(
        _O.finished_at.is_(None), _O.kind.in_(list(kinds)), _acting()
    )
    async with db.read() as conn:
        return [to_operation(r._mapping) for r in (await conn.execute(stmt)).all()]
