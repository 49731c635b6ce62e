"""What an operation's planning waits on right now, so that a slow or unreachable cloud shows why.

The planning loop gives the planner's task a listener (`WaitListener`) through the `observe` hook
that the composition root connects to the cloud client (the engine knows no HTTP): a call of the
listing that waits for its rate budget, waits long for an answer, or waits to retry a failed call
notes why for its endpoint, and clears the note when it goes on. When a planning attempt fails and
is postponed, one note says why and until when. The notes are in the memory of the process that
plans (the service itself, or the worker holding the planning lease) and go when the operation is
planned or refused; a postponement note goes by itself once its time has passed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from jobs.clock import Clock

WaitListener = Callable[[str, str | None], None]
"""`(endpoint, reason)`: the endpoint's calls wait for `reason`; `None`: they no longer wait."""

WaitObserver = Callable[[WaitListener], AbstractContextManager[object]]
"""Makes `listener` the one that calls made within the context (and tasks created in it) tell."""


@contextlib.contextmanager
def no_observer(listener: WaitListener) -> Iterator[None]:
    yield


@dataclass(frozen=True)
class Waiting:
    """One reason an operation's planning waits: on `endpoint` (None: the whole planning, which
    was postponed `until`) since `since`."""

    endpoint: str | None
    reason: str
    since: datetime
    until: datetime | None = None


class WaitNotes:
    """Per operation, the current notes (one per endpoint, plus a postponement)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._notes: dict[str, dict[str | None, Waiting]] = {}

    def listener(self, operation_id: str) -> WaitListener:
        def tell(endpoint: str, reason: str | None) -> None:
            self.note(operation_id, endpoint, reason)

        return tell

    def note(self, operation_id: str, endpoint: str | None, reason: str | None) -> None:
        """Set (or with `reason` None, clear) the note of `endpoint`; an endpoint that still
        waits keeps its `since`."""
        notes = self._notes.setdefault(operation_id, {})
        if reason is None:
            notes.pop(endpoint, None)
        else:
            kept = notes.get(endpoint)
            since = kept.since if kept is not None else self._clock.now()
            notes[endpoint] = Waiting(endpoint, reason, since)
        if not notes:
            self._notes.pop(operation_id, None)

    def postponed(self, operation_id: str, reason: str, until: datetime) -> None:
        """Planning failed and waits until `until`: the only note left for the operation."""
        self._notes[operation_id] = {None: Waiting(None, reason, self._clock.now(), until)}

    def drop(self, operation_id: str) -> None:
        self._notes.pop(operation_id, None)

    def of(self, operation_id: str) -> tuple[Waiting, ...]:
        now = self._clock.now()
        notes = self._notes.get(operation_id, {})
        return tuple(
            note
            for _, note in sorted(notes.items(), key=lambda kv: kv[0] or "")
            if note.until is None or note.until > now
        )
