"""Marks fleet keeps itself (part of the policy store): a mark policy's mark on a server whose
dialect has no tag API, in `policy_marks`, keyed by (endpoint, server id, tag key).

Like a tag, a mark once written is kept: writing it again for the same server and key changes
nothing (`keep` inserts with ON CONFLICT DO NOTHING), so a second replica or a repeated fire
cannot re-date it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from fleet.policies.tables import POLICY_MARKS
from jobs.store.db import Database

_M = POLICY_MARKS.c
CHUNK = 1000


@dataclass(frozen=True)
class KeptMark:
    """One mark fleet keeps for a server."""

    endpoint: str
    server_id: str
    tag: str
    value: str


class MarkRecords:
    db: Database

    async def marks_on(self, endpoint: str) -> dict[str, dict[str, str]]:
        """server id -> {tag: value}: every mark fleet keeps on `endpoint`."""
        stmt = sa.select(_M.server_id, _M.tag, _M.value).where(_M.endpoint == endpoint)
        out: dict[str, dict[str, str]] = {}
        async with self.db.read() as conn:
            for server_id, tag, value in (await conn.execute(stmt)).all():
                out.setdefault(server_id, {})[tag] = value
        return out

    async def keep_marks(
        self, marks: Sequence[KeptMark], *, policy_id: str, fire_id: int | None, now: datetime
    ) -> int:
        """Keep these marks; a server that has one under the same key keeps its own. Returns how
        many were written."""
        rows = [
            {
                "endpoint": m.endpoint, "server_id": m.server_id, "tag": m.tag, "value": m.value,
                "policy_id": policy_id, "fire_id": fire_id, "marked_at": now,
            }
            for m in marks
        ]  # fmt: skip
        insert = cast(type[sa.Insert], postgresql.insert if self.db.is_postgres else sqlite.insert)
        count = 0
        async with self.db.write() as conn:
            for i in range(0, len(rows), CHUNK):
                stmt = insert(POLICY_MARKS).on_conflict_do_nothing(  # type: ignore[attr-defined]
                    index_elements=["endpoint", "server_id", "tag"]
                )
                result = await conn.execute(stmt, rows[i : i + CHUNK])
                count += max(0, result.rowcount or 0)
        return count
