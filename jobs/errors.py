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


class FieldError(ValueError):
    """A request that cannot be taken, naming the field at fault (`field`, dotted as the client
    wrote it: `targets.endpoints[1]`, `params.flavor`) and why (`message`). The one base of every
    such error, so every door answers it the same way (422 in the API, exit 2 in the CLI)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def within(self, prefix: str) -> FieldError:
        """The same error under a parent path (`policies[2]` + `cron`)."""
        return type(self)(f"{prefix}.{self.field}" if self.field else prefix, self.message)


class InvalidSpec(JobsError, FieldError):
    """A strategy or guard value that cannot be understood (names the field)."""


class NotAllowed(JobsError):
    """This caller may not do it, whatever the operation's state (the token that created an
    operation approving it)."""
