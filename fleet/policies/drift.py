"""Drift: a server that did not reach the state an operation asked for, or left it soon after
(started by hand within `[tracking] drift_window` of a stop). Found by `fleet.policies.tracking`,
written here, by ONE function (`DriftLog.record`): every drift is stored there once (per operation,
server and kind), logged as `drift_detected`, announced from there, and then enforced.

Enforcing (a policy with `enforce = true`): the policy's action is applied again to the drifted
server, through the one door (`fleet.engine.admission`) with the policy's targets, strategy and
guard, under the idempotency key `policy:{name}:fire:{fire id}:enforce:{endpoint}/{server}`: at
most once per server per slot (a second drift of the same slot is recorded and not enforced).
What enforcing did is kept on the drift record (`enforced` with the operation, `refused` with the
door's reason, `skipped` with why).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import structlog

from fleet.engine.admission import ActRequest
from fleet.policies.model import Policy
from fleet.policies.ports import Admitter, OperationsPort
from fleet.policies.store_tracking import DriftRecord, NewDrift, TrackingStore
from fleet.policies.targets import action_params
from jobs.clock import Clock
from jobs.errors import FieldError, IdempotencyConflict

log = structlog.get_logger("fleet.policies.drift")


def enforce_key(policy: str, fire_id: int, endpoint: str, server_id: str) -> str:
    return f"policy:{policy}:fire:{fire_id}:enforce:{endpoint}/{server_id}"


class Enforcer:
    """Applies a policy's action again to a drifted server of one of its fires."""

    def __init__(
        self,
        store: TrackingStore,
        admission: Admitter,
        operations: OperationsPort,
        clock: Clock,
    ) -> None:
        self.store = store
        self.admission = admission
        self.operations = operations
        self.clock = clock
        self.policies: Mapping[str, Policy] = {}  # the loaded policies (set by each sweep)

    async def enforce(self, record: DriftRecord) -> DriftRecord:
        d, origin = record.drift, record.drift.origin
        policy = self.policies.get(origin.policy_id or "")
        if policy is None or not policy.spec.enforce or origin.fire_id is None:
            return record
        if await self.store.enforced_before(origin.fire_id, d.endpoint, d.server_id):
            return await self._done(record, "skipped", None, "enforced once already in this slot")
        request = self._request(policy, record, origin.fire_id)
        try:
            new = await self.admission.admit(request)
            view, _ = await self.operations.create(new)
        except (FieldError, IdempotencyConflict) as exc:
            log.warning("drift_enforce_refused", policy=policy.name, reason=str(exc))
            return await self._done(record, "refused", None, str(exc))
        log.info(
            "drift_enforced", policy=policy.name, server=d.server_id, operation_id=view.operation.id
        )
        why = f"{policy.action} again by policy {policy.name}"
        return await self._done(record, "enforced", view.operation.id, why)

    def _request(self, policy: Policy, record: DriftRecord, fire_id: int) -> ActRequest:
        d = record.drift
        targets: dict[str, object] = dict(policy.spec.targets)
        targets.update(endpoints=[d.endpoint], ids=[d.server_id])
        return ActRequest(
            action=policy.action,
            targets=targets,
            params=action_params(policy, self.clock.now().date()),
            strategy=policy.strategy.to_json(),
            guard=None if policy.guard is None else policy.guard.to_json(),
            dry_run=policy.spec.dry_run_only,
            reason=f"policy {policy.name}: enforce after drift {record.id}",
            created_by=f"policy:{policy.name}",
            idempotency_key=enforce_key(policy.name, fire_id, d.endpoint, d.server_id),
            admin=True,
        )

    async def _done(
        self, record: DriftRecord, how: str, operation_id: str | None, reason: str
    ) -> DriftRecord:
        now = self.clock.now()
        await self.store.set_enforcement(record.id, how, operation_id, reason, now)
        return replace(
            record,
            enforcement=how,
            enforce_operation_id=operation_id,
            enforce_reason=reason,
            enforced_at=now,
        )


class DriftLog:
    def __init__(self, store: TrackingStore, clock: Clock, enforcer: Enforcer | None) -> None:
        self.store = store
        self.clock = clock
        self.enforcer = enforcer

    async def record(self, new: NewDrift) -> DriftRecord | None:
        """THE place a drift is written: stored once (None if known already), logged, then
        enforced when its policy says so. An announcement of the drift belongs here, right
        after the insert."""
        record = await self.store.insert_drift(new, self.clock.now())
        if record is None:
            return None
        log.warning(
            "drift_detected",
            drift_id=record.id,
            endpoint=new.endpoint,
            server=new.server_id,
            kind=new.kind,
            desired=new.desired,
            observed=new.observed,
            policy=new.origin.policy_id,
            operation_id=new.origin.operation_id,
        )
        if self.enforcer is not None:
            record = await self.enforcer.enforce(record)
        return record
