"""The runtime: owns the loops' `while`s in one TaskGroup, wakes them, drains, recovers.

Start: register this worker, recover what it held in a previous life (DISPATCHING rows go back to
PENDING with verify_first; AWAITING rows are polled again, never re-sent), reap expired leases of
vanished workers, then run planning, dispatch, polling, reaping and the heartbeat.

Stop: stop claiming at once, give the executor calls in flight `drain_grace` seconds to finish
(their answers are committed), then cancel whatever is left. Cancelled calls leave DISPATCHING rows
that the next start recovers with verify_first.

Typical use from an aiohttp cleanup context::

    async with Runtime(store, planner, executor, limiter, config=config):
        yield
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import socket
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from types import TracebackType

import structlog

from jobs.clock import Clock, SystemClock
from jobs.config import EngineConfig
from jobs.loops.dispatch import Dispatcher
from jobs.loops.planning import PlanningLoop
from jobs.loops.polling import Poller
from jobs.loops.reaping import Reaper
from jobs.loops.recorder import Recorder
from jobs.ports import Executor, JobStore, Planner, RateLimiter, Wakeups
from jobs.waiting import Waiting, WaitObserver, no_observer

log = structlog.get_logger("jobs.runtime")

ALARM_HORIZON = 60.0  # seconds: polls due later are found by the poll loop's idle rounds


class Runtime:
    def __init__(
        self,
        store: JobStore,
        planner: Planner,
        executor: Executor,
        limiter: RateLimiter,
        *,
        clock: Clock | None = None,
        config: EngineConfig | None = None,
        rand: Callable[[], float] = random.random,
        observe: WaitObserver = no_observer,
        wakeups: Wakeups | None = None,
    ) -> None:
        self.store = store
        self.wakeups = wakeups
        self.clock = clock or SystemClock()
        self.config = config or EngineConfig()
        self._stop = asyncio.Event()
        self._wake = {name: asyncio.Event() for name in ("planning", "dispatch", "polling")}
        self.planning = PlanningLoop(
            store,
            planner,
            executor,
            limiter,
            self.clock,
            self.config,
            notify=self.wake_dispatch,
            observe=observe,
        )
        self.recorder = Recorder(store, self.config.worker, self.clock, poll_due=self._poll_due)
        self._alarms: dict[int, asyncio.Task[None]] = {}  # polls due, by 10 ms slot
        self.dispatcher = Dispatcher(
            store,
            executor,
            limiter,
            self.clock,
            self.config,
            rand=rand,
            notify=self._call_finished,
            recorder=self.recorder,
        )
        self.poller = Poller(
            store,
            executor,
            self.clock,
            self.config,
            rand=rand,
            notify=self._call_finished,
            recorder=self.recorder,
            spawn=self._spawn,
        )
        self.reaper = Reaper(store, self.clock, self.config, notify=self.wake_dispatch)
        self._task: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        self._plans: set[asyncio.Task[None]] = set()  # operations being planned

    # --- wake-ups -----------------------------------------------------------------------------

    def wake_planner(self) -> None:
        """Call after creating an operation: plan it now rather than at the next idle tick."""
        self._wake["planning"].set()

    def wake_dispatch(self) -> None:
        self._wake["dispatch"].set()

    def wake(self) -> None:
        for event in self._wake.values():
            event.set()

    def _call_finished(self) -> None:
        self._wake["dispatch"].set()
        self._wake["polling"].set()

    def _poll_due(self, at: datetime) -> None:
        """Wake the poll loop when rows this process recorded fall due (D106), instead of on its
        next idle round (up to `poll_idle` later), and `poll_ahead` before, when a cloud job's
        rows are leased (D108); one timer per 10 ms slot, none past `ALARM_HORIZON` (the idle
        rounds find those)."""
        ahead = timedelta(seconds=self.config.poll_ahead)
        for when in sorted({at - ahead, at}):
            self._wake_at(when)

    def _wake_at(self, at: datetime) -> None:
        delay = (at - self.clock.now()).total_seconds()
        slot = math.ceil(at.timestamp() * 100)
        if delay > ALARM_HORIZON or slot in self._alarms or self._task is None:
            return
        if delay <= 0:
            self._wake["polling"].set()
            return
        self._alarms[slot] = asyncio.create_task(self._alarm(slot, delay), name="jobs-poll-alarm")

    async def _alarm(self, slot: int, delay: float) -> None:
        try:
            await self.clock.sleep(delay + 0.001)
            self._wake["polling"].set()
        finally:
            self._alarms.pop(slot, None)

    def _woken(self, topic: str) -> None:
        """Another process's word (`Wakeups`): an operation to plan, sub-jobs to send, or
        (on connecting) anything."""
        if topic == "planning":
            self.wake_planner()
        elif topic == "dispatch":
            self._call_finished()
        else:
            self.wake()

    def _idle_seconds(self, name: str, idle: float) -> float:
        """A loop's idle sleep: its own `idle`, or `listen_idle` while word of new work arrives from
        other processes and the loop's work can only appear with such word: planning (a
        postponed planning's time is found by this fallback), and dispatch and polling while no
        operation runs (rows come due with time only in running operations)."""
        if self.wakeups is None or not self.wakeups.listening:
            return idle
        if name == "planning" or (name in ("dispatch", "polling") and not self.dispatcher.busy):
            return self.config.listen_idle
        return idle

    def waiting(self, operation_id: str) -> tuple[Waiting, ...]:
        """What the operation's planning waits on now, if this process plans it (jobs.waiting)."""
        return self.planning.waiting.of(operation_id)

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> int:
        """Recover, then start the loops. Returns the sub-jobs recovered or reaped."""
        if self.running:
            raise RuntimeError("the runtime is already running")
        now = self.clock.now()
        until = now + timedelta(seconds=self.config.lease_ttl)
        await self.store.register_worker(
            self.config.worker, socket.gethostname(), os.getpid(), now, until
        )
        recovered = await self.store.recover(self.config.worker, now)
        reaped = await self.store.reap(now, self.config.worker)
        log.info("runtime_started", worker=self.config.worker, recovered=recovered, reaped=reaped)
        self._stop.clear()
        if self.wakeups is not None:
            await self.wakeups.start(self._woken)
        self.dispatcher.start_claiming()
        self._task = asyncio.create_task(self._run(), name="jobs-runtime")
        return recovered + reaped

    async def stop(self, grace: float | None = None) -> None:
        """Drain gracefully (see the module docstring); safe to call twice."""
        if self._task is None:
            return
        self._stop.set()
        self.wake()
        self.dispatcher.stop_claiming()
        grace = self.config.drain_grace if grace is None else grace
        try:
            await self.store.set_draining(self.config.worker)
        except Exception:  # the database may be what is failing; draining goes on regardless
            log.exception("set_draining_failed")
        await self.dispatcher.drain(grace)
        task, self._task = self._task, None
        await self._finish(task, grace)
        for alarm in self._alarms.values():
            alarm.cancel()
        self._alarms.clear()
        if self.wakeups is not None:
            await self.wakeups.stop()
        log.info("runtime_stopped", worker=self.config.worker)

    async def _finish(self, task: asyncio.Task[None], grace: float) -> None:
        """Loops exit after their current round; a round stuck past `grace` is cancelled."""
        sleeper = asyncio.ensure_future(self.clock.sleep(grace))
        try:
            await asyncio.wait({task, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        if not task.done():
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- the loops ----------------------------------------------------------------------------

    async def _run(self) -> None:
        cfg = self.config
        async with asyncio.TaskGroup() as tg:
            self._group = tg
            tg.create_task(self._loop("planning", self._plan_more, cfg.plan_idle))
            tg.create_task(self._loop("dispatch", self.dispatcher.run_once, cfg.dispatch_idle))
            tg.create_task(self._loop("polling", self.poller.run_once, cfg.poll_idle))
            tg.create_task(
                self._loop("reaping", self.reaper.run_once, cfg.reap_interval, always_sleep=True)
            )
            tg.create_task(
                self._loop("heartbeat", self._heartbeat, cfg.lease_ttl / 3, always_sleep=True)
            )

    def _spawn(self, work: Coroutine[None, None, None]) -> asyncio.Task[None]:
        """A task in the loops' group: stopping the runtime waits for it (cancelled after the
        grace like the loops)."""
        if self._group is None:
            raise RuntimeError("the runtime is not running")
        return self._group.create_task(work)

    async def _plan_more(self) -> int:
        """Claim an operation to plan while fewer than `plan_concurrency` are being planned; each
        is planned in a task of its own, so a slow one (a cloud listing) holds up no other."""
        self._plans = {t for t in self._plans if not t.done()}
        if len(self._plans) >= self.config.plan_concurrency or self._group is None:
            return 0  # a plan that ends wakes this loop
        op = await self.planning.claim()
        if op is None:
            return 0
        task = self._group.create_task(self.planning.plan(op), name=f"plan-{op.id}")
        task.add_done_callback(lambda _: self.wake_planner())
        self._plans.add(task)
        return 1

    async def _heartbeat(self) -> int:
        now = self.clock.now()
        held = self.dispatcher.held() | self.poller.held()
        until = now + timedelta(seconds=self.config.lease_ttl)
        await self.store.renew_leases(self.config.worker, now, until, sorted(held))
        return 0

    async def _loop(
        self,
        name: str,
        step: Callable[[], Awaitable[int]],
        idle: float,
        *,
        always_sleep: bool = False,
    ) -> None:
        bound = log.bind(loop=name, worker=self.config.worker)
        while not self._stop.is_set():
            try:
                done = await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                bound.exception("loop_failed")
                await self._idle(name, self.config.error_backoff)
                continue
            if done and not always_sleep:
                await asyncio.sleep(0)  # more work may be waiting: go again, but let others in
            else:
                await self._idle(name, self._idle_seconds(name, idle))

    async def _idle(self, name: str, seconds: float) -> None:
        """Sleep on the clock until `seconds` pass, the loop is woken, or the runtime stops."""
        wake = self._wake.get(name)
        waiters: set[asyncio.Future[object]] = {
            asyncio.ensure_future(self.clock.sleep(seconds)),
            asyncio.ensure_future(self._stop.wait()),
        }
        if wake is not None:
            waiters.add(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        if wake is not None:
            wake.clear()
