"""APScheduler 3.x as the alarm clock, the leader loop, and `run_policies` (what the service
starts inside `fleet serve` / `fleet worker`).

APScheduler decides nothing. Each enabled policy gets a job whose trigger is the policy's own
`Schedule` (so APScheduler wakes at exactly the slots the firing computes, and its buggy
time-zone arithmetic is never used), plus one sweep job every `sweep_interval` seconds that
catches up after downtime, finishes interrupted fires, harvests stop results and picks up policy
changes made on other replicas. Every job only calls `PolicyService.tick()`, which decides from
the database and the clock. Job defaults are set on purpose: `coalesce=True` (a late wake-up is one
wake-up), `misfire_grace_time=None` (a late wake-up still runs: the policy's own `misfire_grace`
judges the slot, not APScheduler's default of one second) and `max_instances=1`.

Only the leader (see `fleet.policies.leader`) runs the scheduler; a standby retries every
`leader_retry` seconds and starts its own when the leader is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from fleet.policies.cron import Schedule
from fleet.policies.drift import DriftLog, Enforcer
from fleet.policies.files import PolicySet
from fleet.policies.firing import Firing
from fleet.policies.leader import Leadership, leadership_for
from fleet.policies.model import Policy, check_set
from fleet.policies.ports import Admitter
from fleet.policies.schedules import ScheduleService
from fleet.policies.service import PolicyService
from fleet.policies.store import PolicyStore
from fleet.policies.store_schedules import ScheduleStore
from fleet.policies.store_tracking import TrackingStore
from fleet.policies.targets import ServerLister
from fleet.policies.tracking import TrackedEndpoint, Tracker, TrackingConfig
from fleet.settings import Settings
from jobs.clock import Clock, SystemClock
from jobs.operations import Operations
from jobs.store.db import Database

log = structlog.get_logger("fleet.policies.scheduler")

SWEEP_JOB = "policies:sweep"
EARLY = timedelta(seconds=2)  # a wake-up this early for a slot waits for it


class SlotTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler ships no types
    """An APScheduler trigger that fires at a policy's slots (the policy's `Schedule`)."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        after = previous_fire_time or (now - timedelta(microseconds=1))
        slot = self.schedule.next_after(after)
        return None if slot is None else slot.at

    def __str__(self) -> str:
        return f"slots[{self.schedule.cron} {self.schedule.tz.key}]"


class WakeUps:
    """One AsyncIOScheduler for the time this process leads."""

    def __init__(self, service: PolicyService, clock: Clock, sweep_interval: float) -> None:
        self._service = service
        self._clock = clock
        self._policies: dict[str, Policy] = {}
        self._sweeping = asyncio.Lock()
        self._again = False
        self._jobs: set[asyncio.Task[object]] = set()  # the tasks of the jobs under way
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
        )
        self._scheduler.add_job(
            self.sweep,
            "interval",
            seconds=sweep_interval,
            id=SWEEP_JOB,
            next_run_time=datetime.now(UTC),  # APScheduler runs on real time, not on `clock`
        )

    def start(self) -> None:
        self._scheduler.start()

    async def shutdown(self) -> None:
        """Stop, and wait until the jobs under way have unwound. APScheduler cancels its jobs'
        tasks but cannot wait for them: a sweep still holding a database connection when the
        service then disposed of its engine gave it back to the disposed pool, where nothing
        closes it (the driver warns when it is garbage-collected)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        jobs = list(self._jobs)
        for task in jobs:
            task.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)

    def _running(self) -> None:
        """Note the task of the job that calls this (waited for by `shutdown`)."""
        task = asyncio.current_task()
        if task is not None and task not in self._jobs:
            self._jobs.add(task)
            task.add_done_callback(self._jobs.discard)

    def poke(self) -> None:
        """Run the sweep now (a policy changed); if one is running, it goes round once more
        (a second instance would be refused by `max_instances`, and the change missed)."""
        if self._sweeping.locked():
            self._again = True
        elif self._scheduler.running:
            self._scheduler.modify_job(SWEEP_JOB, next_run_time=datetime.now(UTC))

    def sync(self, policies: list[Policy]) -> None:
        """One job per enabled policy, rescheduled when its schedule changed."""
        wanted = {p.name: p for p in policies}
        for name in list(self._policies):
            if name not in wanted:
                self._scheduler.remove_job(f"policy:{name}")
                del self._policies[name]
        for name, policy in wanted.items():
            old = self._policies.get(name)
            self._policies[name] = policy
            if old is not None and (old.spec.cron, old.spec.timezone) == (
                policy.spec.cron,
                policy.spec.timezone,
            ):
                continue  # replacing the job would recompute its next wake-up from "now"
            self._scheduler.add_job(
                self.wake,
                SlotTrigger(policy.schedule),
                args=[name],
                id=f"policy:{name}",
                replace_existing=True,
            )

    async def sweep(self) -> None:
        self._running()
        async with self._sweeping:  # the sweep job and the wake-ups take turns
            try:
                self._again = True
                while self._again:
                    self._again = False
                    self.sync(await self._service.tick())
            except Exception:  # logged; the next sweep tries again
                log.exception("policy_sweep_failed")

    async def wake(self, name: str) -> None:
        self._running()
        policy = self._policies.get(name)
        now = self._clock.now()
        if policy is not None:
            slot = policy.schedule.next_after(now - EARLY)
            if slot is not None and now < slot.at <= now + EARLY:
                await self._clock.sleep((slot.at - now).total_seconds())
        await self.sweep()


class PolicyScheduler:
    """The leader loop: acquire, run the wake-ups while leading, step down when the lock is
    lost, retry as a standby."""

    def __init__(
        self,
        service: PolicyService,
        leadership: Leadership,
        clock: Clock,
        *,
        sweep_interval: float = 30.0,
        leader_retry: float = 5.0,
    ) -> None:
        self.service = service
        self.leadership = leadership
        self.clock = clock
        self.sweep_interval = sweep_interval
        self.leader_retry = leader_retry
        self.leading = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PolicyScheduler:
        self._task = asyncio.create_task(self._run(), name="policy-scheduler")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        try:
            while True:
                try:
                    if await self.leadership.acquire():
                        await self._lead()
                except Exception:  # a standby (or a fallen leader) keeps trying
                    log.exception("policy_leader_loop_failed")
                await self.clock.sleep(self.leader_retry)
        finally:
            await self.leadership.release()

    async def _lead(self) -> None:
        log.info("policy_leader_acquired", worker=self.service.firing.worker)
        wake = WakeUps(self.service, self.clock, self.sweep_interval)
        self.service.on_change = wake.poke
        wake.start()
        self.leading.set()
        self.service.leading = True
        try:
            while await self.leadership.held():
                await self.clock.sleep(min(self.leader_retry, 5.0))
            log.warning("policy_leader_lost", worker=self.service.firing.worker)
        finally:
            self.leading.clear()
            self.service.leading = False
            self.service.on_change = None
            await wake.shutdown()


class _HasDatabase(Protocol):
    @property
    def db(self) -> Database: ...


class PolicyDriver(ServerLister, TrackedEndpoint, Protocol):
    """What the policies and tracking need of a driver (every `fleet.drivers.base.Driver`)."""


class FleetParts(Protocol):
    """What `run_policies` needs of `fleet.service.Fleet` (the composition root's value)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> _HasDatabase: ...

    @property
    def drivers(self) -> Mapping[str, PolicyDriver]: ...

    @property
    def operations(self) -> Operations: ...

    @property
    def admission(self) -> Admitter: ...


def tracker_for(fleet: FleetParts, store: PolicyStore, clock: Clock) -> Tracker:
    """Tracking over the fleet's engine and drivers (`fleet.policies.tracking`), configured by
    `[tracking]`."""
    spec = fleet.settings.tracking
    tracking = TrackingStore(store.db)
    enforcer = Enforcer(tracking, fleet.admission, fleet.operations, clock)
    config = TrackingConfig(
        check_interval=timedelta(seconds=spec.check_interval),
        drift_window=timedelta(seconds=spec.drift_window),
    )
    drift = DriftLog(tracking, clock, enforcer)
    return Tracker(tracking, fleet.operations, fleet.drivers, drift, config)


def default_worker() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@contextlib.asynccontextmanager
async def run_policies(
    fleet: FleetParts,
    policies: PolicySet,
    clock: Clock | None = None,
    *,
    worker: str | None = None,
    leadership: Leadership | None = None,
    sweep_interval: float = 30.0,
    leader_retry: float = 5.0,
    stale_after: timedelta = timedelta(minutes=2),
) -> AsyncIterator[PolicyService]:
    """Sync the file policies into the database, run the scheduler while this process leads,
    and yield the service the API uses. Raises PolicyError (naming the field) when a policy
    names an endpoint that is not configured."""
    clock = clock or SystemClock()
    check_set(list(policies.policies), set(fleet.drivers))
    store = PolicyStore(fleet.store.db)
    worker = worker or default_worker()
    schedules = ScheduleService(
        ScheduleStore(fleet.store.db),
        clock,
        policies.calendars,
        policies.schedules,
        inventory=fleet.drivers,
    )
    firing = Firing(
        store,
        fleet.operations,
        fleet.drivers,
        clock,
        worker,
        stale_after=stale_after,
        admission=fleet.admission,
        schedules=schedules,
    )
    service = PolicyService(
        store, fleet.operations, fleet.drivers, clock, worker, policies.calendars, firing
    )
    service.tracker = tracker_for(fleet, store, clock)
    await service.sync_files(policies.policies)
    lead = leadership or leadership_for(fleet.settings.database.url)
    async with PolicyScheduler(
        service, lead, clock, sweep_interval=sweep_interval, leader_retry=leader_retry
    ):
        yield service
