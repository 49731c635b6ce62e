"""The engine's knobs, with defaults that suit the documented cloud limits."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from jobs.retry import RetryPolicy


@dataclass(frozen=True)
class EngineConfig:
    # Identity: rows this worker held in a previous life are recovered at once on start, so keep
    # it stable across restarts and distinct between replicas (several on one host need names).
    worker: str = field(default_factory=socket.gethostname)
    lease_ttl: float = 60.0  # seconds a claimed sub-job stays ours without a heartbeat
    poll_interval: float = 5.0  # seconds between polls of a cloud job, unless the executor says
    max_await: float = 3600.0  # an accepted sub-job with no result after this fails
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Per rate-key prefix (an endpoint's "name:"), the seconds a sub-job may keep being throttled
    # (RetryPolicy.throttle_deadline); the longest matching prefix wins, else `retry`'s own.
    throttle_deadlines: Mapping[str, float] = field(default_factory=dict)
    # planning
    plan_chunk: int = 2000  # rows per insert transaction while streaming the planner
    # Operations planned at once by this process: one whose planner waits on a slow cloud (or
    # writes many rows) does not hold up the others; operations created together are all planned
    # before the first one's calls fill the process (the dispatcher then orders their keys).
    plan_concurrency: int = 4
    plan_retries: int = 3  # transient planner errors tolerated before the operation is refused
    plan_retry_delay: float = 30.0
    # dispatch
    # Concurrent executor calls in this process (each a task; connections are bounded by the
    # drivers). A limit of 120 per window needs 120 calls at once at the window's start: at 64,
    # half of every window waited for the first half's answers to be committed.
    max_calls_in_flight: int = 256
    max_groups_per_tick: int = 256  # claims per rate key per dispatch round
    # Sub-jobs in this process's calls at once, whatever the budgets allow: each is a record in
    # memory until its answer is committed, so this bounds the memory an unlimited campaign
    # takes (at 256 calls of 1,000 servers, a whole 100,000-server operation was held at once).
    max_servers_in_flight: int = 10_000
    # Claim calls for the room a key's window frees within this many seconds: they wait in the
    # limiter's queue, which sends each the moment it fits, so neither the dispatch idle tick
    # nor the claim transaction delays a send (each cost ~0.1 s per window in the mixed bench).
    dispatch_ahead: float = 0.5
    # polling
    poll_limit: int = 2000  # awaiting rows leased per poll round
    # Lease a cloud job's rows that fall due within this many seconds, and send its poll when
    # they are due: the lease (a write of up to `poll_limit` rows, 0.04-0.07 s for 1,000 on
    # SQLite) is then done before the due time instead of between it and the read (D108).
    poll_ahead: float = 0.2
    max_polls_in_flight: int = 16
    # runtime
    dispatch_idle: float = 0.25  # seconds a loop with nothing to do sleeps (unless woken)
    poll_idle: float = 0.5
    plan_idle: float = 0.25  # how soon a worker finds an operation another process created
    reap_interval: float = 15.0
    # While word of new work arrives from other processes (`jobs.ports.Wakeups`: PostgreSQL
    # LISTEN), planning, and dispatch and polling with no operation running, sleep this long when
    # idle: a fallback for a lost notification, and rare rounds for replicas that have no work.
    listen_idle: float = 5.0
    error_backoff: float = 1.0  # after an unexpected error in a loop
    drain_grace: float = 30.0  # on stop, in-flight calls get this long before they are cancelled

    def retry_for(self, rate_key: str) -> RetryPolicy:
        """The retry policy of a rate key: `retry` with its endpoint's throttling deadline."""
        found = [p for p in self.throttle_deadlines if rate_key.startswith(p)]
        if not found:
            return self.retry
        return replace(self.retry, throttle_deadline=self.throttle_deadlines[max(found, key=len)])

    def __post_init__(self) -> None:
        if any(seconds <= 0 for seconds in self.throttle_deadlines.values()):
            raise ValueError("throttle_deadlines must be > 0")
        if not self.worker:
            raise ValueError("worker must be a non-empty name")
        if self.listen_idle <= 0:
            raise ValueError("listen_idle must be > 0")
        if self.dispatch_ahead < 0 or self.poll_ahead < 0:
            raise ValueError("dispatch_ahead and poll_ahead must be >= 0")
        if self.lease_ttl <= 0 or self.poll_interval < 0 or self.max_await <= 0:
            raise ValueError("lease_ttl and max_await must be > 0, poll_interval >= 0")
        if (
            min(
                self.plan_chunk,
                self.plan_concurrency,
                self.max_calls_in_flight,
                self.poll_limit,
                self.max_polls_in_flight,
                self.max_groups_per_tick,
                self.max_servers_in_flight,
            )
            < 1
        ):
            raise ValueError("chunk, limit and concurrency settings must be >= 1")
