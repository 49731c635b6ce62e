"""The reaping loop: sub-jobs whose dispatcher vanished go back to PENDING with verify_first;
operations whose approval window passed without a decision expire (`jobs.approval`).

A DISPATCHING row whose lease expired may or may not have reached the cloud, so it is never
re-sent blind: LEASE_LOST sets `verify_first` and the executor reads the server (or finds the
cloud job) first. An AWAITING row whose poller vanished only loses its poll lease.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from jobs.clock import Clock
from jobs.config import EngineConfig
from jobs.ports import JobStore

log = structlog.get_logger("jobs.reaping")


class Reaper:
    def __init__(
        self,
        store: JobStore,
        clock: Clock,
        config: EngineConfig,
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.notify = notify

    async def run_once(self) -> int:
        """Reap expired leases once, and expire the approvals nobody gave in time. Returns
        sub-jobs returned to PENDING plus operations expired."""
        now = self.clock.now()
        count = await self.store.reap(now, self.config.worker)
        if count:
            log.warning("leases_reaped", count=count)
            if self.notify is not None:
                self.notify()
        expired = await self.store.expire_approvals(now)
        if expired:
            log.info("approvals_expired", count=expired)
        return count + expired
