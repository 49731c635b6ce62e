"""Small in-memory fakes of the engine's ports, for tests of the engine and of the product.

They satisfy the Protocols in `jobs.ports` and behave like a tiny cloud, so a test can assert what
was sent (and how often) rather than that a mock was called:

- `FakePlanner` streams a fixed list of entries (or raises, to test refusals);
- `FakeExecutor` remembers every send per (target, step) and answers submits, polls and
  verifications from per-target scripts, defaulting to "accepted as one cloud job, done after
  `polls_to_complete` polls"; a verification says Completed for what was really sent and
  Resubmit for what was not, like a cloud that can be read back;
- `FakeRateLimiter` hands out fixed headroom per key and records acquires.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from jobs.outcomes import (
    Accepted,
    Advance,
    Completed,
    Noop,
    Outcome,
    Resubmit,
    RetryLater,
    StillRunning,
)
from jobs.ports import (
    ActionProfile,
    FleetSize,
    PlanEntry,
    PlanItem,
    RateLimiter,
    StepProfile,
    SubJobOutcomes,
)
from jobs.ratelimit import Budget, Headroom, KeyState, release_reservation
from jobs.records import Batch, OperationRecord, SubJobRecord
from jobs.states import State


def items(
    count: int,
    *,
    rate_key: str = "cloud:action",
    batch_key: str = "b",
    prefix: str = "srv-",
    scope: str = "",
    skip: Mapping[int, str] | None = None,
) -> list[PlanEntry]:
    """`count` plan items named ``{prefix}{i:05d}``; `skip` maps an index to a skip reason."""
    skip = skip or {}
    return [
        PlanItem(
            target_id=f"{prefix}{i:05d}",
            rate_key=rate_key,
            batch_key=batch_key,
            payload={"i": i},
            skip_reason=skip.get(i),
            scope=scope,
        )
        for i in range(count)
    ]


def subjob_record(**changes: object) -> SubJobRecord:
    """A sub-job as a claim leaves it (DISPATCHING, leased, on call 1, step 0 of a stop), with
    `changes` applied: for tests of what is decided about one."""
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    base = SubJobRecord(
        id=1,
        operation_id="op",
        seq=1,
        target_id="s1",
        kind="stop",
        rate_key="k",
        batch_key="b",
        payload={},
        memo=None,
        state=State.DISPATCHING,
        step=0,
        attempt=1,
        throttles=0,
        not_before=at,
        verify_first=False,
        cloud_job_id=None,
        request_id=None,
        accepted_at=None,
        error_code=None,
        error_message=None,
        reason=None,
        lease_owner="w",
        lease_expires_at=None,
        call_id=1,
        created_at=at,
        updated_at=at,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


class FakePlanner:
    def __init__(
        self,
        entries: Iterable[PlanEntry] = (),
        *,
        error: Exception | None = None,
        error_after: int = 0,
    ) -> None:
        self.entries: dict[str, list[PlanEntry]] = {}
        self.default = list(entries)
        self.error = error
        self.error_after = error_after
        self.plans: list[str] = []

    def set(self, operation_kind: str, entries: Iterable[PlanEntry]) -> None:
        self.entries[operation_kind] = list(entries)

    async def plan(self, operation: OperationRecord) -> AsyncIterator[PlanEntry]:
        self.plans.append(operation.id)
        for i, entry in enumerate(self.entries.get(operation.kind, self.default)):
            if self.error is not None and i >= self.error_after:
                raise self.error
            yield entry
        if self.error is not None:
            raise self.error


@dataclass
class FakeExecutor:
    profiles: dict[str, ActionProfile] = field(default_factory=dict)
    default_profile: ActionProfile = field(
        default_factory=lambda: ActionProfile((StepProfile(max_batch=10),), poll_batch=10)
    )
    polls_to_complete: int = 1
    steps: int = 1  # a multi-step action Advances through this many steps
    limiter: RateLimiter | None = None  # acquire per call, as a driver's gate does
    hold: asyncio.Event | None = None  # submits wait for it (tests of drain and crashes)
    hang_after_send: bool = False  # wait for `hold` after the cloud took the call, not before
    script: dict[str, list[Outcome]] = field(default_factory=dict)  # per target, for submits
    poll_script: dict[str, list[Outcome]] = field(default_factory=dict)
    calls: list[tuple[str, int, tuple[str, ...]]] = field(default_factory=list)
    polls: list[tuple[str | None, tuple[str, ...]]] = field(default_factory=list)
    verifies: list[tuple[str, ...]] = field(default_factory=list)
    sent: Counter[tuple[str, int]] = field(default_factory=Counter)
    cloud_now: datetime | None = None  # what `cloud_clock` answers (claims keep it)
    _jobs: dict[str, int] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def profile(self, kind: str, rate_key: str | None = None) -> ActionProfile:
        return self.profiles.get(kind, self.default_profile)

    async def submit(self, batch: Batch) -> SubJobOutcomes:
        if self.hold is not None and not self.hang_after_send:
            await self.hold.wait()
        if self.limiter is not None:
            await self.limiter.acquire(batch.rate_key, len(batch.subjobs))
        targets = batch.target_ids
        self.calls.append((batch.kind, batch.step, targets))
        job = f"job-{next(self._ids)}"
        out: dict[int, Outcome] = {}
        for sub in batch.subjobs:
            queue = self.script.get(sub.target_id)
            outcome = queue.pop(0) if queue else Accepted(cloud_job_id=job, request_id=f"req-{job}")
            if isinstance(outcome, Accepted | Completed | Advance) or (
                isinstance(outcome, RetryLater) and outcome.maybe_sent
            ):
                self.sent[(sub.target_id, batch.step)] += 1
            out[sub.id] = outcome
        if self.hold is not None and self.hang_after_send:
            await self.hold.wait()  # the cloud has it; the answer is late (or never recorded)
        return out

    async def poll(self, batch: Batch) -> SubJobOutcomes:
        job = batch.subjobs[0].cloud_job_id
        self.polls.append((job, batch.target_ids))
        key = job or ",".join(batch.target_ids)
        self._jobs[key] = self._jobs.get(key, 0) + 1
        done = self._jobs[key] >= self.polls_to_complete
        out: dict[int, Outcome] = {}
        for sub in batch.subjobs:
            queue = self.poll_script.get(sub.target_id)
            if queue:
                out[sub.id] = queue.pop(0)
            elif not done:
                out[sub.id] = StillRunning()
            elif sub.step + 1 < self.steps:
                out[sub.id] = Advance(next_step=sub.step + 1)
            else:
                out[sub.id] = Completed()
        return out

    async def verify(self, batch: Batch) -> SubJobOutcomes:
        self.verifies.append(batch.target_ids)
        out: dict[int, Outcome] = {}
        for sub in batch.subjobs:
            if self.sent[(sub.target_id, sub.step)]:
                out[sub.id] = (
                    Completed(reason="verified")
                    if sub.step + 1 >= self.steps
                    else (Advance(next_step=sub.step + 1, reason="verified"))
                )
            else:
                out[sub.id] = Resubmit(reason="not found in the cloud")
        return out

    async def cloud_clock(self, rate_key: str) -> datetime | None:
        return self.cloud_now

    def sent_twice(self) -> list[tuple[str, int]]:
        return sorted(k for k, n in self.sent.items() if n > 1)


class NoopExecutor(FakeExecutor):
    """Every server is already in the desired state."""

    async def submit(self, batch: Batch) -> SubJobOutcomes:
        self.calls.append((batch.kind, batch.step, batch.target_ids))
        return {s.id: Noop("already in the desired state") for s in batch.subjobs}


class FakeRateLimiter:
    def __init__(
        self,
        headroom: Mapping[str, int] | None = None,
        budgets: Mapping[str, Sequence[Budget]] | None = None,
    ) -> None:
        self.room: dict[str, int] = dict(headroom or {})
        self.budgets: dict[str, tuple[Budget, ...]] = {
            k: tuple(v) for k, v in (budgets or {}).items()
        }
        self.acquired: list[tuple[str, int]] = []
        self.throttled: list[tuple[str, float | None]] = []

    def headroom(self, key: str, ahead: float = 0.0) -> Headroom:
        room = self.room.get(key, sys.maxsize)
        return Headroom(requests=room, servers=sys.maxsize)

    async def acquire(self, key: str, servers: int = 1) -> None:
        release_reservation(key)
        self.acquired.append((key, servers))
        if key in self.room:
            self.room[key] -= 1

    def on_throttled(self, key: str, retry_after: float | None) -> None:
        self.throttled.append((key, retry_after))

    def state(self, key: str) -> KeyState:
        return KeyState(
            key=key,
            budgets=self.budgets.get(key, ()),
            used={},
            queued=0,
            throttled=len([t for t in self.throttled if t[0] == key]),
            waits=0,
            penalty_until=None,
        )


__all__ = ["FakeExecutor", "FakePlanner", "FakeRateLimiter", "FleetSize", "NoopExecutor", "items"]
