"""The state machine, exhaustively: every state (and "not created") x every event."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.states import (
    SETS_VERIFY_FIRST,
    TERMINAL,
    TRANSITIONS,
    Event,
    InvalidTransition,
    OperationFlags,
    OperationState,
    State,
    check_sql,
    creation_states,
    derive_operation_state,
    render_document,
    render_mermaid,
    transition,
)

ROOT = Path(__file__).resolve().parents[3]
P, D, A = State.PENDING, State.DISPATCHING, State.AWAITING
S, F, C, K = State.SUCCEEDED, State.FAILED, State.CANCELLED, State.SKIPPED
U = State.UNKNOWN

# An independent copy of the intended machine: (state or None, event) -> target. Anything missing
# must be refused. Changing states.py without changing this table fails the test on purpose.
EXPECTED: dict[tuple[State | None, Event], State] = {
    (None, Event.PLAN): P,
    (None, Event.SKIP): K,
    (P, Event.CLAIM): D,
    (D, Event.ACCEPT): A,
    (D, Event.COMPLETE): S,
    (A, Event.COMPLETE): S,
    (D, Event.NOOP): K,
    (D, Event.RETRY): P,
    (A, Event.RETRY): P,
    (D, Event.FAIL): F,
    (A, Event.FAIL): F,
    (D, Event.NO_EVIDENCE): U,
    (A, Event.NO_EVIDENCE): U,
    (D, Event.ADVANCE): P,
    (A, Event.ADVANCE): P,
    (D, Event.SPLIT): P,
    (D, Event.RESUBMIT): P,
    (A, Event.RESUBMIT): P,
    (D, Event.LEASE_LOST): P,
    (P, Event.CANCEL): C,
    (F, Event.REQUEUE): P,
    (U, Event.REQUEUE): P,
}

ALL_STATES: list[State | None] = [None, *State]


@pytest.mark.parametrize("state", ALL_STATES, ids=lambda s: str(s))
@pytest.mark.parametrize("event", list(Event), ids=lambda e: e.value)
def test_every_state_and_event(state: State | None, event: Event) -> None:
    expected = EXPECTED.get((state, event))
    if expected is None:
        with pytest.raises(InvalidTransition):
            transition(state, event)
    else:
        assert transition(state, event) is expected


def test_the_table_has_no_edge_the_expectation_lacks() -> None:
    edges = {
        (src, event): to
        for event, (sources, to) in TRANSITIONS.items()
        for src in (sources or {None})
    }
    assert edges == EXPECTED


def test_terminal_states_only_leave_through_requeue() -> None:
    for (state, event), _ in EXPECTED.items():
        if state in TERMINAL:
            assert (state, event) in {(F, Event.REQUEUE), (U, Event.REQUEUE)}


def test_unknown_is_terminal_and_sets_verify_first() -> None:
    assert U in TERMINAL
    assert U.value == "unknown"
    assert Event.NO_EVIDENCE in SETS_VERIFY_FIRST
    assert "'unknown'" in check_sql("state")


def test_every_state_is_reachable_from_creation() -> None:
    reached = set(creation_states())
    frontier = list(reached)
    while frontier:
        state = frontier.pop()
        for (src, _), to in EXPECTED.items():
            if src == state and to not in reached:
                reached.add(to)
                frontier.append(to)
    assert reached == set(State)


def test_the_check_constraint_lists_exactly_the_enum() -> None:
    sql = check_sql("state")
    assert sql.startswith("state IN (")
    listed = {v.strip().strip("'") for v in sql[len("state IN (") : -1].split(",")}
    assert listed == {s.value for s in State}


def test_mermaid_has_one_arrow_per_state_pair_with_every_event() -> None:
    text = render_mermaid()
    assert text.startswith("stateDiagram-v2\n")
    assert "    [*] --> pending : PLAN" in text
    assert "    dispatching --> pending : RETRY, ADVANCE, SPLIT, RESUBMIT, LEASE_LOST" in text
    for event in Event:
        assert event.value.upper() in text
    for state in TERMINAL:
        assert f"    {state.value} --> [*]" in text


def test_the_generated_document_is_current() -> None:
    path = ROOT / "docs" / "state-machine.md"
    assert path.read_text(encoding="utf-8") == render_document(), (
        "docs/state-machine.md is stale: run `python -m jobs.states > docs/state-machine.md`"
    )


def test_the_readme_embeds_the_current_diagram() -> None:
    doc = render_document()
    diagram = doc[doc.index("```mermaid") : doc.index("```", doc.index("```mermaid") + 3) + 3]
    assert diagram in (ROOT / "README.md").read_text(encoding="utf-8")


def _flags(**kw: bool) -> OperationFlags:
    base = dict(
        planned=True,
        refused=False,
        dry_run=False,
        paused=False,
        cancel_requested=False,
        halted=False,
    )
    base.update(kw)
    return OperationFlags(**base)


@pytest.mark.parametrize(
    ("counts", "flags", "expected"),
    [
        ({}, _flags(planned=False), OperationState.PLANNING),
        ({}, _flags(planned=False, refused=True), OperationState.REFUSED),
        ({P: 3}, _flags(dry_run=True), OperationState.PLANNED),
        ({P: 3, D: 1}, _flags(), OperationState.RUNNING),
        ({A: 1}, _flags(paused=True), OperationState.PAUSED),
        ({A: 1, C: 4}, _flags(cancel_requested=True), OperationState.CANCELLING),
        ({C: 4, S: 1}, _flags(cancel_requested=True), OperationState.CANCELLED),
        ({D: 1, F: 6}, _flags(halted=True), OperationState.STOPPING),
        ({F: 6, C: 44}, _flags(halted=True), OperationState.STOPPED),
        ({S: 9, K: 1}, _flags(), OperationState.SUCCEEDED),
        ({S: 9, F: 1}, _flags(), OperationState.COMPLETED_WITH_FAILURES),
        ({S: 9, U: 1}, _flags(), OperationState.COMPLETED_WITH_FAILURES),  # no evidence
        ({S: 8, F: 1, U: 1}, _flags(), OperationState.COMPLETED_WITH_FAILURES),
        ({A: 1, U: 1}, _flags(), OperationState.RUNNING),
        ({U: 2, C: 8}, _flags(halted=True), OperationState.STOPPED),
        ({}, _flags(), OperationState.SUCCEEDED),  # nothing to do is a success
    ],
)
def test_operation_state_is_derived_from_counts_and_flags(
    counts: dict[State, int], flags: OperationFlags, expected: OperationState
) -> None:
    assert derive_operation_state(counts, flags) is expected
