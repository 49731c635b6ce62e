"""Errors the engine raises to its callers (the product maps them to HTTP problems)."""

from __future__ import annotations


class JobsError(Exception):
    """Base of the engine's own errors."""


class NotFound(JobsError):
    """No such operation."""


class Conflict(JobsError):
    """The request cannot be applied in the operation's current state."""


class IdempotencyConflict(Conflict):
    """The idempotency key was already used for a different request."""


class PlanningError(JobsError):
    """Raised by a Planner for a permanent refusal (bad selector, unsupported action).

    Any other exception from a planner is treated as transient and retried a few times.
    """


class InvalidSpec(JobsError, ValueError):
    """A strategy or guard value that cannot be understood (names the field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
