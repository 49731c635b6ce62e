"""What an executor returns for each sub-job of a call, a poll or a verification.

The executor is the only place that turns cloud answers (and driver errors) into these; the engine
turns them into state transitions with `jobs.decide`. They carry no engine state, only facts about
the cloud, so an executor never needs to know about attempts, leases or backoff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from jobs.types import JSONMapping

ROLLED_BACK = "failure"
"""The memo key under which an executor keeps the failure that made it roll a multi-step action
back (a compensation step, e.g. a Nova resize revert). retry-failed restarts such a sub-job from
its first step, with that step's rate and batch keys: retrying the compensation would only roll
back again."""


@dataclass(frozen=True)
class Accepted:
    """The cloud took the request; poll `cloud_job_id` (or the server when there is none)."""

    cloud_job_id: str | None = None
    request_id: str | None = None
    poll_after: float | None = None  # seconds before the first poll; None = engine default
    memo: JSONMapping | None = None  # executor's notes kept on the sub-job (e.g. for a restart)


@dataclass(frozen=True)
class Completed:
    """The action (every step of it) is done for this server."""

    reason: str | None = None
    request_id: str | None = None
    memo: JSONMapping | None = None  # executor's notes added to the sub-job's (a created server)


@dataclass(frozen=True)
class Noop:
    """Nothing to do: the server was already in the desired state (at step 0 it is SKIPPED)."""

    reason: str


@dataclass(frozen=True)
class RetryLater:
    """Not done, not failed: try again. `throttled` answers never count as a server failure
    (unless the throttle retries run out); `delay` (e.g. Retry-After) wins over backoff.

    `maybe_sent`: the request may have reached the cloud (a timeout or a dropped connection after
    sending), so the cloud is read before anything is sent again. From a poll, RetryLater means
    "could not read the job, poll again" and sends nothing.

    `on_give_up`: what to do instead of failing once the retries run out, e.g. the compensation
    step of a multi-step action (revert a resize whose confirm keeps failing).
    """

    delay: float | None = None
    reason: str = ""
    throttled: bool = False
    code: str | None = None
    maybe_sent: bool = False
    on_give_up: Advance | None = None  # when the retries run out: this step instead of failing


@dataclass(frozen=True)
class Failed:
    """The cloud refused or the job failed, with the vendor's code and message."""

    code: str
    reason: str
    retryable: bool = False
    on_give_up: Advance | None = None  # a retryable one whose retries run out: this step instead


@dataclass(frozen=True)
class StillRunning:
    """From a poll: the cloud job (or the server's transition) is not finished yet."""

    poll_after: float | None = None


@dataclass(frozen=True)
class Advance:
    """A multi-step action finished a step; dispatch `next_step` (after `delay` seconds).

    `rate_key` / `batch_key` change when the next step uses another API (e.g. resize then start).
    `passed_over`: the step did not apply to the server and was passed over without a call, so
    this alone does not make the action begun (`jobs.store.models.BEGUN_SQL`).
    """

    next_step: int
    delay: float = 0.0
    rate_key: str | None = None
    batch_key: str | None = None
    reason: str | None = None
    memo: JSONMapping | None = None
    passed_over: bool = False


@dataclass(frozen=True)
class Split:
    """The whole batch call was rejected because of some of its servers.

    `culprits` names the target ids the cloud blamed: they are isolated (sent alone) and the rest
    re-sent together. With no names the engine bisects the batch. Nothing was done by the cloud.
    """

    culprits: frozenset[str] = field(default_factory=frozenset)
    reason: str = ""


@dataclass(frozen=True)
class Resubmit:
    """From a verification (or a poll): the cloud has no trace of the call; send it again."""

    reason: str = ""


@dataclass(frozen=True)
class Unknown:
    """The call may have acted and the cloud keeps no record either way: neither succeeded nor
    failed, never sent again on its own (retry-failed takes it only when asked)."""

    reason: str = "the call may have acted; the cloud keeps no record"


Outcome: TypeAlias = (
    Accepted
    | Completed
    | Noop
    | RetryLater
    | Failed
    | StillRunning
    | Advance
    | Split
    | Resubmit
    | Unknown
)
