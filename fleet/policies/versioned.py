"""The versioned rows of the policy package (`policies`, `schedules`): written through the API
with a version that starts at 1 and grows by one with each change.

- `insert_first`: the row at version 1; a key already taken is the caller's conflict.
- `merge_patch`: what a PATCH (a JSON merge patch, RFC 7396) makes of the stored spec.
- `update_next`: read the row, refuse if the caller expected another version (`If-Match`), then
  write the change only where the version is still the one read (compare-and-set): two changes
  racing from the same version cannot both win, on SQLite or PostgreSQL; the loser gets the
  caller's conflict, never a silently lost update.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from jobs.store.db import Database

Conflict = Callable[[str], Exception]


async def insert_first(
    db: Database, table: sa.Table, values: Mapping[str, object], conflict: Exception
) -> None:
    try:
        async with db.write() as conn:
            await conn.execute(table.insert().values(**values, version=1))
    except IntegrityError:
        raise conflict from None


async def update_next(
    db: Database,
    table: sa.Table,
    key: sa.Column[str],
    value: str,
    expected: int | None,
    changes: Callable[[RowMapping], Mapping[str, object]],
    conflict: Conflict,
) -> bool:
    """Apply `changes(row as read)` and the next version; False if there is no such row."""
    async with db.write() as conn:
        row = (await conn.execute(sa.select(table).where(key == value))).first()
        if row is None:
            return False
        version = int(row._mapping["version"])
        if expected is not None and version != expected:
            raise conflict(f"version is {version}, not {expected}")
        done = await conn.execute(
            sa.update(table)
            .where(key == value, table.c.version == version)
            .values(**changes(row._mapping), version=version + 1)
        )
        if done.rowcount != 1:
            raise conflict(f"version {version} was changed meanwhile; read it again")
    return True


def merge_patch(target: object, patch: object) -> dict[str, object]:
    """RFC 7396 onto an object: a key set to null is removed (its default applies again), an
    object merges key by key, anything else replaces the value."""
    out = dict(target) if isinstance(target, Mapping) else {}
    if not isinstance(patch, Mapping):
        return out
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping):
            out[key] = merge_patch(out.get(key), value)
        else:
            out[key] = value
    return out
