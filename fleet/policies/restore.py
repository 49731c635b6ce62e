"""Restore mode: the morning start starts only what the evening stop really stopped, and only if
nobody has touched it since.

1. **Harvest.** Once a stop fire's operation has ended, the servers whose stop sub-job succeeded
   (`Operations.subjobs(op, SUCCEEDED)`) are recorded in `policy_fire_servers` with their status
   and the cloud's change stamp (`updated`) as they are right then. The record outlives the
   operation's rows. The leader harvests on every sweep, so the stamp is taken soon after the stop.
2. **Restore.** A restore fire takes every stop fire of `restore_from` that no restore has taken
   yet (within `restore_window` before its slot: a holiday restore does not lose a Friday stop),
   and starts a server only if it is stopped now, its stamp is unchanged since the harvest, it
   still matches the restore policy's targets and its tag rules (opt-out, snooze) allow it. So:
   - a server someone stopped by hand was never in the list (its stop sub-job did not succeed:
     the planner skipped it as "already stopped");
   - a server someone started by hand is running: left alone;
   - a server someone started and stopped again by hand has a new stamp: left alone.
   Each stop fire is restored at most once (`consumed_by`).

When the stop's operation is still running at restore time, what succeeded so far is used.
A dialect that reports no change stamp (`updated` is None) is judged by status alone.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from fleet.domain import ServerRef, ServerStatus
from fleet.policies.model import Policy
from fleet.policies.ports import OperationsPort
from fleet.policies.records import FireRecord, HarvestedServer
from fleet.policies.store import PolicyStore
from fleet.policies.tags import verdict
from fleet.policies.targets import Considered, Evaluation, Inventory, action_params, snapshot
from jobs.states import FINISHED_OPERATIONS, State

PAGE = 1000


async def stopped_by(operations: OperationsPort, operation_id: str) -> dict[str, list[str]]:
    """endpoint -> server ids whose sub-job in the operation succeeded."""
    out: dict[str, list[str]] = defaultdict(list)
    cursor: str | None = None
    while True:
        page = await operations.subjobs(operation_id, State.SUCCEEDED, cursor, PAGE)
        for sj in page.items:
            endpoint, server_id = sj.payload.get("endpoint"), sj.payload.get("server_id")
            if isinstance(endpoint, str) and isinstance(server_id, str):
                out[endpoint].append(server_id)
        if page.next_cursor is None:
            return dict(out)
        cursor = page.next_cursor


async def collect(
    fire: FireRecord, operations: OperationsPort, inventory: Inventory
) -> tuple[list[HarvestedServer], bool]:
    """What a stop fire stopped, with today's status and stamp; and whether its operation ended."""
    if fire.operation_id is None:
        return [], True
    view = await operations.get(fire.operation_id)
    ids = await stopped_by(operations, fire.operation_id)
    now = await snapshot(inventory, ids)
    servers = []
    for endpoint, server_ids in sorted(ids.items()):
        for server_id in server_ids:
            current = now.get((endpoint, server_id))
            status = current.status.value if current else ServerStatus.DELETED.value
            servers.append(
                HarvestedServer(endpoint, server_id, status, current.updated if current else None)
            )
    return servers, view.state in FINISHED_OPERATIONS


async def harvest(
    store: PolicyStore,
    operations: OperationsPort,
    inventory: Inventory,
    fire: FireRecord,
    now: datetime,
) -> bool:
    """Record a finished stop fire's servers (False while its operation is still running: the
    cloud is not listed until there is something final to record)."""
    if fire.operation_id is not None:
        view = await operations.get(fire.operation_id)
        if view.state not in FINISHED_OPERATIONS:
            return False
    servers, _ = await collect(fire, operations, inventory)
    return await store.save_harvest(fire.id, servers, now)


def restore_verdict(
    policy: Policy, record: HarvestedServer, current: ServerRef | None, day: date
) -> tuple[bool, str]:
    if current is None:
        return False, "gone"
    if record.status != ServerStatus.STOPPED.value:
        return False, f"was {record.status} when the stop was recorded: left alone"
    if current.status is not ServerStatus.STOPPED:
        return False, f"{current.status.value} now (started by hand?): left alone"
    if record.updated and current.updated and record.updated != current.updated:
        return False, "changed since the stop (touched by hand?): left alone"
    if not policy.targets.selector.matches(current):
        return False, "no longer matches the policy's targets"
    v = verdict(policy, current, day)
    return v.act, v.reason


async def stop_records(
    policy: Policy,
    store: PolicyStore,
    operations: OperationsPort,
    inventory: Inventory,
    slot_at: datetime,
    fire_id: int | None,
) -> tuple[list[int], dict[tuple[str, str], HarvestedServer]]:
    """The unconsumed stop fires before the slot and, per server, its latest stop record (a fire
    not harvested yet is read from its operation now, without writing)."""
    assert policy.spec.restore_from is not None
    fires = await store.stop_fires(
        policy.spec.restore_from,
        slot_at - policy.spec.restore_window,
        slot_at,
        consumable_by=fire_id,
    )
    stored = await store.harvested([f.id for f in fires if f.harvested_at is not None])
    latest: dict[tuple[str, str], HarvestedServer] = {}
    for fire in fires:
        records = stored.get(fire.id)
        if records is None:
            records, _ = await collect(fire, operations, inventory)
        for record in records:
            latest[(record.endpoint, record.server_id)] = record
    return [f.id for f in fires], latest


async def evaluate_restore(
    policy: Policy,
    store: PolicyStore,
    operations: OperationsPort,
    inventory: Inventory,
    slot_at: datetime,
    day: date,
    fire_id: int | None = None,
) -> Evaluation:
    """The restore fire's targets now (a preview passes no fire id and consumes nothing)."""
    fire_ids, latest = await stop_records(policy, store, operations, inventory, slot_at, fire_id)
    ids: dict[str, list[str]] = defaultdict(list)
    for endpoint, server_id in latest:
        ids[endpoint].append(server_id)
    current = await snapshot(inventory, ids)
    considered = []
    for key, record in sorted(latest.items()):
        server = current.get(key)
        act, reason = restore_verdict(policy, record, server, day)
        if server is None:
            considered.append(Considered(*key, "", record.status, act, reason))
        else:
            caps = inventory[server.endpoint].capabilities
            considered.append(Considered.of(server, act, reason, policy, caps))
    return Evaluation(
        tuple(considered),
        action_params(policy, day),
        consumed=tuple(fire_ids),
    )
