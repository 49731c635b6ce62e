"""`0006_unknown_state`: from 0005, existing sub-jobs and their history are kept and the state
`unknown` is accepted after; a downgrade maps `unknown` to `failed` (and `no_evidence` events to
`fail`), so the older schema's CHECK and code hold, and refuses `unknown` again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from jobs.store.migrate import alembic_config, downgrade, upgrade
from jobs.store.models import BEGUN_INDEX, EVENTS, OPERATIONS, SUBJOBS

pytestmark = pytest.mark.migration

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BEFORE = "0005"
MINE = "0006_unknown"


def _operation() -> dict[str, Any]:
    return {
        "id": "op1",
        "kind": "reboot",
        "params": {},
        "selector": {},
        "strategy": {},
        "guard": None,
        "fingerprint": {},
        "dry_run": False,
        "reason": "",
        "created_by": "t",
        "created_at": T0,
        "updated_at": T0,
        "planned_at": T0,
        "plan_attempts": 1,
        "targets": 4,
        "skipped": 0,
        "rate_keys": [],
        "summary": None,
        "current_wave": 0,
        "paused": False,
        "cancel_requested": False,
    }


def _subjob(seq: int, state: str, **values: object) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": seq + 1,
        "operation_id": "op1",
        "seq": seq,
        "target_id": f"s{seq}",
        "kind": "reboot",
        "rate_key": "cloud:action",
        "batch_key": "b",
        "payload": {},
        "memo": None,
        "state": state,
        "step": 0,
        "attempt": 0,
        "throttles": 0,
        "not_before": T0,
        "verify_first": False,
        "created_at": T0,
        "updated_at": T0,
    }
    return row | values


def _event(subjob: int, event: str, from_state: str, to_state: str) -> dict[str, Any]:
    return {
        "operation_id": "op1",
        "subjob_id": subjob,
        "target_id": f"s{subjob - 1}",
        "event": event,
        "from_state": from_state,
        "to_state": to_state,
        "at": T0,
    }


def _run(url: str, *statements: Any) -> list[list[tuple[Any, ...]]]:
    """Execute the statements in one transaction; the rows of each that returns rows."""

    async def run() -> list[list[tuple[Any, ...]]]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                out = []
                for stmt in statements:
                    result = await conn.execute(stmt)
                    out.append([tuple(r) for r in result.all()] if result.returns_rows else [])
                return out
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _states(url: str) -> list[tuple[Any, ...]]:
    stmt = sa.select(SUBJOBS.c.target_id, SUBJOBS.c.state, SUBJOBS.c.verify_first)
    return _run(url, stmt.order_by(SUBJOBS.c.seq))[0]


def _events(url: str) -> list[tuple[Any, ...]]:
    e = EVENTS.c
    stmt = sa.select(e.subjob_id, e.event, e.from_state, e.to_state).order_by(e.id)
    return _run(url, stmt)[0]


def test_the_revision_follows_0005(sqlite_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(sqlite_url))
    revision = script.get_revision(MINE)
    assert revision is not None and revision.down_revision == BEFORE


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_upgrade_keeps_the_rows_and_accepts_unknown_and_downgrade_maps_it_to_failed(
    database: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url"))
    upgrade(url, BEFORE)
    _run(
        url,
        OPERATIONS.insert().values(_operation()),
        SUBJOBS.insert().values(_subjob(0, "succeeded")),
        SUBJOBS.insert().values(_subjob(1, "failed", error_code="Ecs.0001")),
        SUBJOBS.insert().values(_subjob(2, "pending", verify_first=True)),
        EVENTS.insert().values(_event(2, "fail", "dispatching", "failed")),
    )
    with pytest.raises(IntegrityError):  # the state did not exist at 0005
        _run(url, SUBJOBS.insert().values(_subjob(3, "unknown")))

    upgrade(url, MINE)
    assert _states(url) == [
        ("s0", "succeeded", False),
        ("s1", "failed", False),
        ("s2", "pending", True),
    ]
    _run(
        url,
        SUBJOBS.insert().values(_subjob(3, "unknown", verify_first=True)),
        EVENTS.insert().values(_event(4, "no_evidence", "dispatching", "unknown")),
    )
    with pytest.raises(IntegrityError):  # still a CHECK: any other word is refused
        _run(url, SUBJOBS.insert().values(_subjob(4, "bogus")))
    if database == "sqlite":  # the batch rebuild kept the partial index with its condition
        [[(sql,)]] = _run(
            url, sa.text("SELECT sql FROM sqlite_master WHERE name = :n").bindparams(n=BEGUN_INDEX)
        )
        assert "WHERE" in sql

    downgrade(url, BEFORE)
    assert _states(url)[-1] == ("s3", "failed", True)  # read back before any re-send
    assert _events(url) == [
        (2, "fail", "dispatching", "failed"),
        (4, "fail", "dispatching", "failed"),
    ]
    with pytest.raises(IntegrityError):
        _run(url, SUBJOBS.insert().values(_subjob(5, "unknown")))
    upgrade(url)  # and up again to head
