"""Engine records -> response models: counts by state, progress, ETA, links, per-server results."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from fleet.api.schemas import (
    LinksOut,
    OperationOut,
    PlanOut,
    ProgressOut,
    ServerOut,
    SubJobOut,
    WaitingOut,
)
from fleet.api.schemas_approvals import ApprovalOut
from fleet.domain import ServerRef
from jobs.records import OperationView, PlanSummary, SubJobRecord
from jobs.states import FINISHED_OPERATIONS, TERMINAL, OperationState, State
from jobs.waiting import Waiting


def operation_path(operation_id: str) -> str:
    return f"/v1/operations/{operation_id}"


def eta_seconds(view: OperationView, now: datetime) -> float | None:
    """Seconds left: from the pace so far once servers finish, else from the plan's estimate."""
    if view.state in FINISHED_OPERATIONS:
        return 0.0
    op = view.operation
    if op.summary is None or op.planned_at is None:
        return None
    active = sum(n for s, n in view.counts.items() if s not in TERMINAL)
    if active == 0:
        return 0.0
    elapsed = max(0.0, (now - op.planned_at).total_seconds())
    acted = max(0, view.done - op.skipped)
    if acted > 0 and elapsed > 0:
        return round(active * elapsed / acted, 1)
    return round(max(0.0, op.summary.eta_seconds - elapsed), 1)


def progress(view: OperationView) -> ProgressOut:
    total = sum(view.counts.values())
    done = view.done
    finished = 100.0 if view.state in FINISHED_OPERATIONS else 0.0
    percent = round(done * 100 / total, 1) if total else finished
    return ProgressOut(total=total, done=done, active=total - done, percent=percent)


def operation_out(
    view: OperationView, now: datetime, waiting: Sequence[Waiting] = ()
) -> OperationOut:
    op = view.operation
    path = operation_path(op.id)
    return OperationOut(
        id=op.id,
        action=op.kind,
        params=dict(op.params),
        targets=dict(op.selector),
        strategy=op.strategy.to_json(),
        guard=None if op.guard is None else op.guard.to_json(),
        dry_run=op.dry_run,
        reason=op.reason,
        state=view.state,
        counts={s.value: view.counts.get(s, 0) for s in State},
        progress=progress(view),
        eta_seconds=eta_seconds(view, now),
        current_wave=op.current_wave,
        wave_count=None if op.summary is None else op.summary.wave_count,
        paused=op.paused,
        created_by=op.created_by,
        cancelled_by=op.cancelled_by,
        idempotency_key=op.idempotency_key,
        refused_reason=op.refused_reason,
        halted_reason=op.halted_reason,
        created_at=op.created_at,
        updated_at=op.updated_at,
        planned_at=op.planned_at,
        finished_at=op.finished_at,
        approval=approval_out(view),
        waiting=[  # only while planning (or listing, D101): a cancelled one waits for nothing
            WaitingOut(endpoint=w.endpoint, reason=w.reason, since=w.since, until=w.until)
            for w in waiting
            if view.state is OperationState.PLANNING
            or (op.listing and view.state is OperationState.RUNNING)
        ],
        links=LinksOut(self=path, subjobs=f"{path}/subjobs", events=f"{path}/events"),
    )


def approval_out(view: OperationView) -> ApprovalOut | None:
    op, approval = view.operation, view.operation.approval
    if approval is None:
        return None
    return ApprovalOut(
        state=op.approval_flag or "pending",
        reason=approval.reason,
        requested_at=op.planned_at,
        expires_at=approval.expires_at,
        decided_by=approval.decided_by,
        decided_at=approval.decided_at,
        note=approval.note,
    )


def plan_out(summary: PlanSummary) -> PlanOut:
    return PlanOut.model_validate(summary.to_json())


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def subjob_out(sub: SubJobRecord) -> SubJobOut:
    payload = sub.payload
    return SubJobOut(
        id=sub.id,
        seq=sub.seq,
        target_id=sub.target_id,
        endpoint=_text(payload.get("endpoint")),
        # a planned create has no server id until the cloud made it (`fleet.engine.creating`)
        server_id=_text(payload.get("server_id") or (sub.memo or {}).get("server_id")),
        name=_text(payload.get("name")),
        state=sub.state,
        step=sub.step,
        attempt=sub.attempt,
        throttles=sub.throttles,
        rate_key=sub.rate_key,
        cloud_job_id=sub.cloud_job_id,
        request_id=sub.request_id,
        error_code=sub.error_code,
        error_message=sub.error_message,
        reason=sub.reason,
        accepted_at=sub.accepted_at,
        updated_at=sub.updated_at,
    )


def server_out(server: ServerRef) -> ServerOut:
    return ServerOut(
        endpoint=server.endpoint,
        id=server.id,
        name=server.name,
        status=server.status,
        raw_status=server.raw_status,
        task_state=server.task_state,
        flavor=server.flavor,
        tags=dict(server.tags),
        locked=server.locked,
    )
