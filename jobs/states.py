"""The sub-job state machine, as data.

One table (`TRANSITIONS`) drives everything that knows about states: the Python validation in
`transition()`, the compare-and-set guard in the store (`UPDATE ... WHERE state = :from`), the
event rows written with every change, the Mermaid diagram in the docs (`render_mermaid()`) and the
CHECK constraint on the state column (`check_sql()`). Adding a state or an edge here is the only
way to change the machine; a test keeps the generated diagram and the database constraint current.

The operation's state is not stored: `derive_operation_state()` computes it from the sub-job counts
plus the operation's control flags, so there is no second source of truth to drift.

Regenerate the diagram with ``python -m jobs.states > docs/state-machine.md``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    PENDING = "pending"  # planned; eligible when not_before <= now
    DISPATCHING = "dispatching"  # claimed; the cloud call may be in flight
    AWAITING = "awaiting"  # the cloud accepted; polling a cloud job or the server's status
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"  # the call may have acted and the cloud keeps no record either way


class Event(StrEnum):
    PLAN = "plan"  # planning created the sub-job, to be acted on
    SKIP = "skip"  # planning created the sub-job already skipped (with a reason)
    CLAIM = "claim"  # a dispatcher took it (write-ahead: committed before the cloud call)
    ACCEPT = "accept"  # the cloud accepted the call (cloud job id recorded)
    COMPLETE = "complete"  # the action (all its steps) is done
    NOOP = "noop"  # nothing to do: the server was already in the desired state
    RETRY = "retry"  # try again after not_before (backoff, throttling)
    FAIL = "fail"  # gave up, with the vendor's code and message
    NO_EVIDENCE = "no_evidence"  # the call may have acted; the cloud keeps no record either way
    ADVANCE = "advance"  # a multi-step action moves to its next step
    SPLIT = "split"  # the batch call was rejected because of some servers: re-dispatch smaller
    RESUBMIT = "resubmit"  # the cloud has no trace of the call: it may be sent again
    LEASE_LOST = "lease_lost"  # its dispatcher vanished: read the cloud before sending again
    CANCEL = "cancel"  # cancelled by the user or by the error budget
    REQUEUE = "requeue"  # retry-failed: a failed (or, when asked, unknown) sub-job goes again


TERMINAL: frozenset[State] = frozenset(
    {State.SUCCEEDED, State.FAILED, State.CANCELLED, State.SKIPPED, State.UNKNOWN}
)
UNSUCCESSFUL: frozenset[State] = frozenset({State.FAILED, State.UNKNOWN})
"""Ended without the cloud's evidence of success: they make an operation `completed_with_failures`
and count against its error budget."""
ACTIVE: frozenset[State] = frozenset({State.PENDING, State.DISPATCHING, State.AWAITING})
IN_FLIGHT: frozenset[State] = frozenset({State.DISPATCHING, State.AWAITING})

_P, _D, _A = State.PENDING, State.DISPATCHING, State.AWAITING
_CREATED: frozenset[State] = frozenset()  # an empty source set means "created in this state"

TRANSITIONS: Mapping[Event, tuple[frozenset[State], State]] = {
    Event.PLAN: (_CREATED, _P),
    Event.SKIP: (_CREATED, State.SKIPPED),
    Event.CLAIM: (frozenset({_P}), _D),
    Event.ACCEPT: (frozenset({_D}), _A),
    Event.COMPLETE: (frozenset({_D, _A}), State.SUCCEEDED),
    Event.NOOP: (frozenset({_D}), State.SKIPPED),
    Event.RETRY: (frozenset({_D, _A}), _P),
    Event.FAIL: (frozenset({_D, _A}), State.FAILED),
    Event.NO_EVIDENCE: (frozenset({_D, _A}), State.UNKNOWN),
    Event.ADVANCE: (frozenset({_D, _A}), _P),
    Event.SPLIT: (frozenset({_D}), _P),
    Event.RESUBMIT: (frozenset({_D, _A}), _P),
    Event.LEASE_LOST: (frozenset({_D}), _P),
    Event.CANCEL: (frozenset({_P}), State.CANCELLED),
    Event.REQUEUE: (frozenset({State.FAILED, State.UNKNOWN}), _P),
}

# Side effects the store applies with an event (documented here so the table stays the reference).
SETS_VERIFY_FIRST: frozenset[Event] = frozenset({Event.LEASE_LOST, Event.NO_EVIDENCE})


class InvalidTransition(ValueError):
    """An event that the table does not allow from the given state."""

    def __init__(self, state: State | None, event: Event) -> None:
        super().__init__(f"event {event.value!r} is not allowed from state {state!r}")
        self.state = state
        self.event = event


def sources(event: Event) -> frozenset[State]:
    return TRANSITIONS[event][0]


def target(event: Event) -> State:
    return TRANSITIONS[event][1]


def transition(state: State | None, event: Event) -> State:
    """The state after `event` from `state` (None = not created yet), or InvalidTransition."""
    allowed, to = TRANSITIONS[event]
    if state is None:
        if allowed:
            raise InvalidTransition(state, event)
        return to
    if state not in allowed:
        raise InvalidTransition(state, event)
    return to


def creation_states() -> frozenset[State]:
    """States a sub-job may be inserted in (targets of the creation events)."""
    return frozenset(to for src, to in TRANSITIONS.values() if not src)


def check_sql(column: str = "state") -> str:
    """The CHECK constraint text for the state column, from the enum."""
    values = ", ".join(f"'{s.value}'" for s in State)
    return f"{column} IN ({values})"


def render_mermaid() -> str:
    """A Mermaid `stateDiagram-v2` of the table; edges between the same states share one arrow."""
    edges: dict[tuple[str, str], list[str]] = {}
    for event, (srcs, to) in TRANSITIONS.items():
        names = [s.value for s in sorted(srcs, key=list(State).index)] or ["[*]"]
        for name in names:
            key = (name, to.value)
            edges.setdefault(key, []).append(event.value.upper())
    lines = ["stateDiagram-v2"]
    lines += [f"    {a} --> {b} : {', '.join(names)}" for (a, b), names in edges.items()]
    lines += [f"    {s.value} --> [*]" for s in State if s in TERMINAL]
    return "\n".join(lines) + "\n"


def render_document() -> str:
    """The generated `docs/state-machine.md` (embedded in the README)."""
    rows = "\n".join(
        f"| `{e.value.upper()}` | {', '.join(f'`{s.value}`' for s in sorted(src, key=list(State).index)) or '(created)'} "
        f"| `{to.value}` |"
        for e, (src, to) in TRANSITIONS.items()
    )
    return (
        "# Sub-job state machine\n\n"
        "Generated from `jobs/states.py` by `python -m jobs.states`; do not edit by hand.\n\n"
        f"```mermaid\n{render_mermaid()}```\n\n"
        "| event | from | to |\n|---|---|---|\n"
        f"{rows}\n\n"
        "`LEASE_LOST` also sets `verify_first`: the executor reads the cloud before anything is sent "
        "again. `NO_EVIDENCE` ends a sub-job `unknown`: its call may have acted and the cloud keeps "
        "no record either way, so it is neither a success nor a failure, and it is never sent "
        "again on its own. `REQUEUE` (retry-failed) takes `failed` sub-jobs, and `unknown` ones "
        "only when asked (`include_unknown`); an `unknown` one is requeued to be sent again (the cloud keeps no record a read could find). "
        "Polling an `awaiting` sub-job is not a transition.\n"
    )


class OperationState(StrEnum):
    PLANNING = "planning"  # targets not resolved yet
    REFUSED = "refused"  # planning refused it (blast radius, bad targets); nothing was written
    PLANNED = "planned"  # a dry run: planned, never dispatched
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLING = "cancelling"  # cancelled; calls already in flight are finishing
    STOPPING = "stopping"  # the error budget ran out; calls already in flight are finishing
    SUCCEEDED = "succeeded"  # every sub-job succeeded or was skipped
    COMPLETED_WITH_FAILURES = "completed_with_failures"  # done, some failed or unknown (in budget)
    STOPPED = "stopped"  # done after the error budget ran out
    CANCELLED = "cancelled"  # done after a cancel
    # (new states go last: the SSE event ids encode a state by its position, `fleet.api.events`)
    PENDING_APPROVAL = "pending_approval"  # planned; nothing is sent until another caller approves
    REJECTED = "rejected"  # its approval was refused: nothing was sent
    EXPIRED = "expired"  # nobody decided on its approval in time: nothing was sent


FINISHED_OPERATIONS: frozenset[OperationState] = frozenset(
    {
        OperationState.SUCCEEDED,
        OperationState.COMPLETED_WITH_FAILURES,
        OperationState.STOPPED,
        OperationState.CANCELLED,
        OperationState.REFUSED,
        OperationState.PLANNED,
        OperationState.REJECTED,
        OperationState.EXPIRED,
    }
)
"""Operation states that never change again (a dry run ends at PLANNED)."""


@dataclass(frozen=True)
class OperationFlags:
    planned: bool
    refused: bool
    dry_run: bool
    paused: bool
    cancel_requested: bool
    halted: bool
    # None (no approval needed), "pending", or the decision: "approved", "rejected", "expired"
    approval: str | None = None
    # planned and dispatched while its listing goes on (D101): active whatever its counts say
    listing: bool = False


def _approval_state(flags: OperationFlags) -> OperationState | None:
    """Pending approval (unless cancelled), or ended by a rejection or an expiry."""
    if flags.approval == "rejected":
        return OperationState.REJECTED
    if flags.approval == "expired":
        return OperationState.EXPIRED
    if flags.approval == "pending" and not flags.cancel_requested:
        return OperationState.PENDING_APPROVAL
    return None


def derive_operation_state(counts: Mapping[State, int], flags: OperationFlags) -> OperationState:
    """The operation's state from its sub-jobs' counts and its control flags."""
    if flags.refused:
        return OperationState.REFUSED
    if not flags.planned:
        return OperationState.PLANNING
    if flags.dry_run:
        return OperationState.PLANNED
    waiting = _approval_state(flags)
    if waiting is not None:
        return waiting
    active = sum(counts.get(s, 0) for s in ACTIVE)
    if active or flags.listing:
        if flags.cancel_requested:
            return OperationState.CANCELLING
        if flags.halted:
            return OperationState.STOPPING
        return OperationState.PAUSED if flags.paused else OperationState.RUNNING
    if flags.cancel_requested:
        return OperationState.CANCELLED
    if flags.halted:
        return OperationState.STOPPED
    if any(counts.get(s, 0) for s in UNSUCCESSFUL):
        return OperationState.COMPLETED_WITH_FAILURES
    return OperationState.SUCCEEDED


if __name__ == "__main__":  # pragma: no cover - the generator entry point
    sys.stdout.write(render_document())
