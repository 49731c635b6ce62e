"""A durable execution engine that knows nothing about clouds.

Operations are split into sub-jobs (one per target), planned, claimed in batches within rate
budgets, sent, polled and reaped, each step committed before and after the call, so a crash never
loses or repeats work. The engine deals only in opaque `kind`, `target_id`, `payload`, `rate_key`
and `batch_key`; a product plugs in by implementing the Protocols in `jobs.ports`.

The tree: the model at the top (`states`: the state machine as data; `records`: what the store
returns; `outcomes`: what an executor returns; `errors`, `types`, `strategy`, `retry`,
`ratelimit`, `clock`, `config`; `ports`: the Protocols; `decide` and `plan`: the pure rules),
`store/` (every SQL statement) below `loops/` (planning, dispatch, polling, reaping and the
runtime that runs them), and `operations`, the operation API a product exposes.

The names below are what a product may use. They are loaded when first asked for, so importing
one light module (`jobs.errors`, say) does not load the database layer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobs.clock import Clock, SystemClock
    from jobs.config import EngineConfig
    from jobs.errors import (
        Conflict,
        FieldError,
        IdempotencyConflict,
        InvalidSpec,
        JobsError,
        NotFound,
        PlanningError,
    )
    from jobs.loops.runtime import Runtime
    from jobs.operations import Operations
    from jobs.outcomes import (
        Accepted,
        Advance,
        Completed,
        Failed,
        Noop,
        Outcome,
        Resubmit,
        RetryLater,
        Split,
        StillRunning,
    )
    from jobs.ports import (
        ActionProfile,
        CallResult,
        Executor,
        FleetSize,
        JobStore,
        PlanEntry,
        PlanItem,
        Planner,
        RateLimiter,
        StepProfile,
        SubJobOutcomes,
    )
    from jobs.records import (
        Batch,
        EventRecord,
        NewOperation,
        OperationRecord,
        OperationView,
        Page,
        PlanSummary,
        SubJobRecord,
    )
    from jobs.retry import RetryPolicy
    from jobs.states import FINISHED_OPERATIONS, Event, OperationState, State
    from jobs.store.db import Database
    from jobs.store.job_store import SqlJobStore
    from jobs.store.migrate import upgrade
    from jobs.strategy import BlastRadius, Strategy

_WHERE = {
    "jobs.ports": (
        "ActionProfile CallResult Executor FleetSize JobStore PlanEntry PlanItem Planner"
        " RateLimiter StepProfile SubJobOutcomes"
    ),
    "jobs.records": (
        "Batch EventRecord NewOperation OperationRecord OperationView Page PlanSummary SubJobRecord"
    ),
    "jobs.outcomes": (
        "Accepted Advance Completed Failed Noop Outcome Resubmit RetryLater Split StillRunning"
    ),
    "jobs.states": "Event FINISHED_OPERATIONS OperationState State",
    "jobs.errors": (
        "Conflict FieldError IdempotencyConflict InvalidSpec JobsError NotFound PlanningError"
    ),
    "jobs.strategy": "BlastRadius Strategy",
    "jobs.retry": "RetryPolicy",
    "jobs.clock": "Clock SystemClock",
    "jobs.config": "EngineConfig",
    "jobs.operations": "Operations",
    "jobs.store.db": "Database",
    "jobs.store.job_store": "SqlJobStore",
    "jobs.store.migrate": "upgrade",
    "jobs.loops.runtime": "Runtime",
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names.split()}

__all__ = [
    "FINISHED_OPERATIONS",
    "Accepted",
    "ActionProfile",
    "Advance",
    "Batch",
    "BlastRadius",
    "CallResult",
    "Clock",
    "Completed",
    "Conflict",
    "Database",
    "EngineConfig",
    "Event",
    "EventRecord",
    "Executor",
    "Failed",
    "FieldError",
    "FleetSize",
    "IdempotencyConflict",
    "InvalidSpec",
    "JobStore",
    "JobsError",
    "NewOperation",
    "Noop",
    "NotFound",
    "OperationRecord",
    "OperationState",
    "OperationView",
    "Operations",
    "Outcome",
    "Page",
    "PlanEntry",
    "PlanItem",
    "PlanSummary",
    "Planner",
    "PlanningError",
    "RateLimiter",
    "Resubmit",
    "RetryLater",
    "RetryPolicy",
    "Runtime",
    "Split",
    "SqlJobStore",
    "State",
    "StepProfile",
    "StillRunning",
    "Strategy",
    "SubJobOutcomes",
    "SubJobRecord",
    "SystemClock",
    "upgrade",
]


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'jobs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # asked once, then a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
