"""`fleet.policy.fired`: what became of a slot, told to webhook subscribers in the transaction
that records it (`PolicyStore.finish` and `record_skips`).

The outcome a receiver sees: `fired` (an operation, or marks kept), `refused` (admission said no),
`nothing_to_do` (no server to act on), `misfired` (missed by more than the misfire grace),
`skipped` (a skip day, or coalesced into a later slot), `failed` (could not be evaluated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet.policies.records import FireStatus
from fleet.policies.tables import POLICIES
from fleet.webhooks.events import EventType, Scope, iso
from fleet.webhooks.outbox import publish

NOTHING_TO_DO = "no servers to act on"  # the reason `fleet.policies.firing` records
SLOTS_LISTED = 100  # slots named in one event of skipped slots


def outcome(status: FireStatus | str, reason: str | None) -> str:
    status = FireStatus(status)
    text = reason or ""
    if status is FireStatus.SKIPPED:
        if text == NOTHING_TO_DO:
            return "nothing_to_do"
        return "misfired" if text.startswith("missed by") else "skipped"
    return status.value


async def _scope(conn: AsyncConnection, policy_id: str, state: str) -> Scope:
    spec = (
        await conn.execute(sa.select(POLICIES.c.spec).where(POLICIES.c.id == policy_id))
    ).scalar()
    targets = spec.get("targets") if isinstance(spec, dict) else None
    named = targets.get("endpoints") if isinstance(targets, dict) else None
    endpoints = tuple(str(e) for e in named) if isinstance(named, list) else ()
    return Scope(endpoints, policy_id, state)


async def fire_finished(conn: AsyncConnection, fire: RowMapping, now: datetime) -> None:
    """One fire's end (fired, refused, skipped, failed)."""
    state = outcome(str(fire["status"]), fire["reason"])
    policy_id = str(fire["policy_id"])
    data = {
        "policy": policy_id,
        "outcome": state,
        "reason": fire["reason"],
        "slot": fire["scheduled_at"],
        "trigger": fire["trigger"],
        "operation_id": fire["operation_id"],
        "targets": fire["targets"],
        "dry_run": fire["dry_run"],
        "fire_id": fire["id"],
    }
    scope = await _scope(conn, policy_id, state)
    await publish(
        conn, EventType.POLICY_FIRED, policy_id, data, now=now, scope=scope, source="/v1/policies"
    )


async def slots_skipped(
    conn: AsyncConnection, policy_id: str, skips: Sequence[tuple[datetime, str]], now: datetime
) -> None:
    """Slots the schedule recorded as skipped in one go (a catch-up can skip many): one event per
    outcome, naming the slots (the latest `SLOTS_LISTED`) and their count."""
    groups: dict[str, list[tuple[datetime, str]]] = {}
    for slot, reason in skips:
        groups.setdefault(outcome(FireStatus.SKIPPED, reason), []).append((slot, reason))
    for state, slots in groups.items():
        listed = slots[-SLOTS_LISTED:]
        data = {
            "policy": policy_id,
            "outcome": state,
            "reason": listed[-1][1],
            "slot": iso(listed[-1][0]),
            "trigger": "schedule",
            "operation_id": None,
            "count": len(slots),
            "slots": [{"slot": iso(at), "reason": why} for at, why in listed],
        }
        scope = await _scope(conn, policy_id, state)
        await publish(
            conn,
            EventType.POLICY_FIRED,
            policy_id,
            data,
            now=now,
            scope=scope,
            source="/v1/policies",
        )


async def drift_detected(
    conn: AsyncConnection, drift_id: int, values: Mapping[str, object]
) -> None:
    """`fleet.drift.detected`: a server that did not reach what an operation or fire asked, or
    left it soon after; told in the transaction that records it, once per drift record."""
    policy_id = values.get("policy_id")
    data = {"id": drift_id, **values}
    scope = Scope((str(values["endpoint"]),), None if policy_id is None else str(policy_id))
    now = values["detected_at"]
    assert isinstance(now, datetime)
    subject = f"{values['endpoint']}/{values['server_id']}"
    await publish(
        conn, EventType.DRIFT_DETECTED, subject, data, now=now, scope=scope, source="/v1/drift"
    )
