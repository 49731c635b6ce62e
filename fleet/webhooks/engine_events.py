"""From the engine's history to webhook events, in the engine's own transaction.

`on_engine_events` is registered with `Database.listen` (see `jobs.store.db`): the engine hands
it every batch of event rows it appends, on the connection of the write that appends them, so
the outbox rows commit with the operation's change. Rows no subscription cares about cost one
dictionary look-up; when some matter and there is at least one subscription, the operation's row
is read for the filter's endpoint and policy. Dry runs change nothing and tell nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy.ext.asyncio import AsyncConnection

from fleet.webhooks.events import EventType, Scope, Subscription
from fleet.webhooks.outbox import publish, publish_failures, subscriptions
from jobs.records import OperationRecord
from jobs.store.base import operation_row, to_operation

# engine event -> (webhook event, the operation's state it reports)
_OPERATION_EVENTS: dict[str, tuple[EventType, str]] = {
    "operation.created": (EventType.OPERATION_CREATED, "pending"),
    "operation.planned": (EventType.OPERATION_STARTED, "running"),
    "operation.paused": (EventType.OPERATION_PAUSED, "paused"),
    "operation.halted": (EventType.BUDGET_EXHAUSTED, "stopping"),
    "operation.finished": (EventType.OPERATION_FINISHED, ""),
    "operation.refused": (EventType.OPERATION_FINISHED, "refused"),
}
# the engine's final states -> the outcome a receiver sees
OUTCOMES = {
    "succeeded": "succeeded",
    "completed_with_failures": "completed_with_failures",
    "stopped": "failed",  # the error budget ran out
    "cancelled": "cancelled",
    "refused": "refused",
}
_FAILED = ("failed", "unknown")


def _relevant(row: Mapping[str, object]) -> bool:
    if row["subjob_id"] is None:
        return row["event"] in _OPERATION_EVENTS
    return row["to_state"] in _FAILED


def policy_of(op: OperationRecord) -> str | None:
    """The policy whose fire created the operation (its idempotency key `policy:NAME:SLOT`)."""
    key = op.idempotency_key or ""
    return key.split(":", 2)[1] if key.startswith("policy:") and key.count(":") >= 2 else None


def endpoints_of(op: OperationRecord) -> tuple[str, ...]:
    named = op.selector.get("endpoints")
    if isinstance(named, list) and named:
        return tuple(str(e) for e in named)
    return tuple(sorted({k.split(":", 1)[0] for k in op.rate_keys}))


def operation_data(op: OperationRecord) -> dict[str, object]:
    return {
        "operation_id": op.id,
        "action": op.kind,
        "params": dict(op.params),
        "endpoints": list(endpoints_of(op)),
        "policy": policy_of(op),
        "created_by": op.created_by,
        "reason": op.reason,
        "targets": op.targets,
        "skipped": op.skipped,
    }


async def on_engine_events(conn: AsyncConnection, rows: Sequence[Mapping[str, object]]) -> None:
    picked = [r for r in rows if _relevant(r)]
    if not picked:
        return
    subs = await subscriptions(conn)
    if not subs:
        return
    by_op: dict[str, list[Mapping[str, object]]] = {}
    for row in picked:
        by_op.setdefault(str(row["operation_id"]), []).append(row)
    for op_id, op_rows in by_op.items():
        op = to_operation(await operation_row(conn, op_id))
        if not op.dry_run:
            await _publish_operation(conn, op, op_rows, subs)


async def _publish_operation(
    conn: AsyncConnection,
    op: OperationRecord,
    rows: Sequence[Mapping[str, object]],
    subs: Sequence[Subscription],
) -> None:
    base = operation_data(op)
    endpoints, policy = endpoints_of(op), policy_of(op)
    failures: list[Mapping[str, object]] = []
    for row in rows:
        at = cast(datetime, row["at"])
        if row["subjob_id"] is not None:
            failures.append(_failure(row))
            continue
        type_, state = _OPERATION_EVENTS[str(row["event"])]
        data = {**base, "state": state or str(row["message"]), "message": row["message"]}
        if type_ is EventType.OPERATION_FINISHED:
            state = OUTCOMES.get(str(data["state"]), str(data["state"]))
            data["outcome"] = state
            # why it stopped short (its error budget, a listing stopped early) or was refused
            data["halted_reason"], data["refused_reason"] = op.halted_reason, op.refused_reason
        scope = Scope(endpoints, policy, state)
        await publish(
            conn, type_, op.id, data, now=at, scope=scope, source="/v1/operations", only=subs
        )
    if failures:
        scope = Scope(endpoints, policy, "running")
        now = cast(datetime, rows[-1]["at"])
        await publish_failures(conn, op.id, failures, base, now=now, scope=scope, subs=subs)


def _failure(row: Mapping[str, object]) -> dict[str, object]:
    endpoint, _, server_id = str(row["target_id"]).rpartition("/")  # the planner's ENDPOINT/ID
    return {
        "endpoint": endpoint or None,
        "server_id": server_id,
        "state": row["to_state"],
        "code": row["code"],
        "message": row["message"],
        "at": row["at"],
    }
