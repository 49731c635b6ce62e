"""The dispatch loop: budget first, then claim, one cloud call per group, fair between operations.

For every rate key with work, `run_once` asks the limiter how much could leave now or within
`dispatch_ahead` seconds (`headroom`; calls claimed ahead wait in the limiter's FIFO queue, which
sends each the moment it fits), minus what this process has claimed but not yet handed to the
limiter, and claims at most that, in groups (sub-jobs sharing batch key, step and verify flag, up
to the executor's batch size for the step, the operation's in-flight allowance, the key's
server headroom and what is left of `max_servers_in_flight`, which bounds the sub-jobs this
process holds in memory at once), one cloud call per group. Keys whose calls carry the fewest servers go first.
Operations sharing a key get equal shares of its headroom in turn, and the turn order carries
over between rounds (round robin), so a big campaign cannot starve a small one.

Each group's executor call runs as its own task. The claim was committed before the call
(write-ahead); the outcome is committed right after it, shielded from cancellation, so a shutdown
never loses an answer the cloud already gave. The executor's driver acquires the limiter itself;
the dispatcher never acquires (that would count every call twice). For the same reason a
claimed call is the dispatcher's to count only until its driver reaches the limiter: the driver
acquires `until_done`, so from then the limiter counts it (in flight, then a period after its
answer), and a reservation kept until the call ends would count it twice and hold the key below
its ceiling (`jobs.ratelimit.Reservation`; measured in `docs/benchmarks.md`, "Engine"). With a
generous budget a round claims many groups per operation in one transaction (`claim_batches`),
and the answers are committed many per transaction (`jobs.loops.recorder`), so the bookkeeping stays
well under the limits.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import structlog

from jobs.clock import Clock
from jobs.config import EngineConfig
from jobs.decide import Context, Phase, decide_batch, summarize
from jobs.loops.recorder import Recorder
from jobs.outcomes import Accepted, Outcome
from jobs.ports import CallResult, Executor, JobStore, RateLimiter
from jobs.ratelimit import Reservation, reserving
from jobs.records import ActiveOperation, Batch, ClaimRequest
from jobs.strategy import in_flight_allowance, wave_end

log = structlog.get_logger("jobs.dispatch")


class CallTally:
    """This process's cloud calls since it started (for `/metrics`, labelled by its worker name):
    those sent and not answered yet by (rate key, purpose), and those answered by (rate key,
    purpose, outcome). `answered` only ever grows; a call cancelled before its answer leaves the
    calls in flight without being counted answered."""

    def __init__(self) -> None:
        self.answered: Counter[tuple[str, str, str]] = Counter()
        self._open: dict[int, tuple[str, str]] = {}  # call id -> (rate key, purpose)

    def sent(self, batch: Batch) -> None:
        if batch.call_id is not None:
            self._open[batch.call_id] = (batch.rate_key, "verify" if batch.verify else "submit")

    def ended(self, call_id: int | None, outcome: str | None = None) -> None:
        """The call is over: answered with `outcome`, or (None) given up without an answer."""
        key = None if call_id is None else self._open.pop(call_id, None)
        if key is not None and outcome is not None:
            self.answered[(*key, outcome)] += 1

    def in_flight(self) -> Counter[tuple[str, str]]:
        return Counter(self._open.values())


class Dispatcher:
    def __init__(
        self,
        store: JobStore,
        executor: Executor,
        limiter: RateLimiter,
        clock: Clock,
        config: EngineConfig,
        *,
        rand: Callable[[], float] = random.random,
        notify: Callable[[], None] | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.limiter = limiter
        self.clock = clock
        self.config = config
        self.rand = rand
        self.notify = notify
        self.recorder = recorder or Recorder(store, config.worker, clock)
        self.claiming = True
        self.calls = CallTally()
        self._tasks: dict[asyncio.Task[None], Batch] = {}  # calls in flight
        self._last_served: dict[str, str] = {}  # rate key -> operation served last
        self._reserved_calls: Counter[str] = Counter()
        self._reserved_servers: Counter[str] = Counter()
        self._held_servers = 0  # sub-jobs in the calls of `_tasks` (max_servers_in_flight)
        self._rounds = 0  # rounds under way: each may still be claiming, then starting calls
        self._no_round = asyncio.Event()
        self._no_round.set()
        self._drained = False  # a drain gave up waiting: nothing claimed after it is sent
        self._active = False  # the last round found operations to claim for

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def busy(self) -> bool:
        """Operations were running at the last round's look, or calls are in flight: work may
        come due with time (a retry's delay, a budget's window, a poll), not only with news."""
        return self._active or bool(self._tasks)

    def held(self) -> set[int]:
        """Sub-jobs whose call is in this process right now (their leases get renewed)."""
        return {s.id for batch in self._tasks.values() for s in batch.subjobs}

    async def run_once(self) -> int:
        """One dispatch round over every rate key with work. Returns sub-jobs claimed."""
        if not self.claiming:
            return 0
        self._rounds += 1
        self._no_round.clear()
        try:
            return await self._round()
        finally:
            self._rounds -= 1
            if not self._rounds:
                self._no_round.set()

    async def _round(self) -> int:
        active = await self.store.active_operations()
        self._active = bool(active)
        by_key: dict[str, list[ActiveOperation]] = {}
        for item in active:
            for key in item.operation.rate_keys:
                by_key.setdefault(key, []).append(item)
        allowance = {
            a.operation.id: in_flight_allowance(a.operation.strategy.max_in_flight, a.in_flight)
            for a in active
        }
        claimed = 0
        for key in sorted(by_key, key=lambda k: (self._batch_size(k, by_key[k]), k)):
            claimed += await self._dispatch_key(key, by_key[key], allowance)
        return claimed

    def _batch_size(self, key: str, ops: Sequence[ActiveOperation]) -> int:
        """Keys whose calls carry few servers go first: they need the most calls, so their
        windows set the pace, and their claims are quick; a 1,000-server claim took 0.6 s and a
        per-server key claimed after it started every window late."""
        steps = self.executor.profile(ops[0].operation.kind, key).steps
        return max((s.max_batch for s in steps), default=1)

    def _turns(self, key: str, ops: Sequence[ActiveOperation]) -> list[ActiveOperation]:
        """Operations in round-robin order: the one after the last served goes first."""
        last = self._last_served.get(key)
        ids = [o.operation.id for o in ops]
        start = ids.index(last) + 1 if last in ids else 0
        return list(ops[start:]) + list(ops[:start])

    def _window(self, key: str) -> float | None:
        """The longest budget period of a rate key: a throttled sub-job waits about that long."""
        periods = [b.period for b in self.limiter.state(key).budgets]
        return max(periods) if periods else None

    def _budget(self, key: str) -> tuple[int, int]:
        room = self.limiter.headroom(key, ahead=self.config.dispatch_ahead)
        spare = self.config.max_servers_in_flight - self._held_servers
        return (
            room.requests - self._reserved_calls[key],
            min(room.servers - self._reserved_servers[key], spare),
        )

    def _room(self, requests: int, groups: int) -> int:
        """Groups that may still be claimed in this round for a key."""
        return min(
            requests,
            self.config.max_groups_per_tick - groups,
            self.config.max_calls_in_flight - len(self._tasks),
        )

    async def _dispatch_key(
        self, key: str, ops: Sequence[ActiveOperation], allowance: dict[str, int]
    ) -> int:
        """Share this key's headroom between its operations: in rotation order, each gets an
        equal number of groups per pass (claimed in one transaction), leftovers go round again."""
        requests, servers = self._budget(key)
        turns = self._turns(key, ops)
        claimed = groups = 0
        while turns and servers > 0 and self.claiming and self._room(requests, groups) > 0:
            share = max(1, self._room(requests, groups) // len(turns))
            again: list[ActiveOperation] = []
            for item in turns:
                want = min(share, self._room(requests, groups))
                if want <= 0 or servers <= 0 or not self.claiming:
                    break
                op_id = item.operation.id
                batches = await self._claim(
                    key, item, min(servers, allowance[op_id]), servers, want
                )
                for batch in batches:
                    size = len(batch.subjobs)
                    requests, servers, groups = requests - 1, servers - size, groups + 1
                    if not batch.begun:
                        allowance[op_id] -= size
                    claimed += size
                    self._spawn(batch)
                if batches:
                    self._last_served[key] = op_id
                if len(batches) == want:
                    again.append(item)  # it may have more
            turns = again
        return claimed

    async def _claim(
        self, key: str, item: ActiveOperation, servers: int, headroom: int, groups: int
    ) -> list[Batch]:
        # Sub-jobs whose action has begun are in flight already (counted in the allowance), so
        # they are claimed whatever the allowance, and they are all a stopped operation claims.
        begun_only = item.stopped or servers <= 0
        if begun_only and not item.begun:
            return []
        if begun_only:
            servers = headroom
        if servers <= 0:
            return []
        op = item.operation
        now = self.clock.now()
        request = ClaimRequest(
            operation_id=op.id,
            rate_key=key,
            max_servers=servers,
            seq_end=wave_end(op.targets, op.strategy.waves, op.current_wave),
            worker=self.config.worker,
            now=now,
            lease_until=now + timedelta(seconds=self.config.lease_ttl),
            params=op.params,
            begun_only=begun_only,
            cloud_floor=await self.executor.cloud_clock(key),
        )
        steps = self.executor.profile(op.kind, key).steps
        return await self.store.claim_batches(request, [s.max_batch for s in steps], groups)

    def _spawn(self, batch: Batch) -> None:
        if self._drained:  # claimed, never sent: recovery verifies it before anything is sent
            log.warning("call_not_started_after_drain", call_id=batch.call_id)
            return
        key, size = batch.rate_key, len(batch.subjobs)
        self._reserved_calls[key] += 1
        self._reserved_servers[key] += size

        def unreserve() -> None:
            self._reserved_calls[key] -= 1
            self._reserved_servers[key] -= size

        reservation = Reservation(key, unreserve)
        self._held_servers += size
        task = asyncio.create_task(
            self._call(batch), name=f"call-{batch.call_id}", context=reserving(reservation)
        )
        self._tasks[task] = batch
        self.calls.sent(batch)
        task.add_done_callback(lambda t: self._done(t, batch, reservation))

    def _done(self, task: asyncio.Task[None], batch: Batch, reservation: Reservation) -> None:
        self._tasks.pop(task, None)
        self.calls.ended(batch.call_id)  # still open: it ended without a recorded answer
        self._held_servers -= len(batch.subjobs)
        reservation.release()  # a call that never reached the limiter (nothing to send, error)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "call_record_failed",
                call_id=batch.call_id,
                operation_id=batch.operation_id,
                error=repr(task.exception()),
            )
        if self.notify is not None:
            self.notify()

    async def _call(self, batch: Batch) -> None:
        bound = log.bind(
            operation_id=batch.operation_id,
            call_id=batch.call_id,
            rate_key=batch.rate_key,
            servers=len(batch.subjobs),
            step=batch.step,
        )
        result: Mapping[int, Outcome] | BaseException
        try:
            if batch.verify:
                result = await self.executor.verify(batch)
            else:
                result = await self.executor.submit(batch)
        except asyncio.CancelledError:
            raise  # rows stay DISPATCHING: recovery verifies them before anything is re-sent
        except Exception as exc:
            bound.exception("executor_call_failed")
            result = exc
        ctx = Context(
            now=self.clock.now(),
            phase=Phase.VERIFY if batch.verify else Phase.SUBMIT,
            policy=self.config.retry,
            poll_interval=self.config.poll_interval,
            max_await=self.config.max_await,
            rand=self.rand,
            policy_for=self.config.retry_for,
            window=self._window,
        )
        call = _call_result(batch, result)
        await self.recorder.record(decide_batch(batch, result, ctx), call)
        self.calls.ended(batch.call_id, None if call is None else call.outcome)
        bound.info("call_recorded", outcome=None if call is None else call.outcome)

    def stop_claiming(self) -> None:
        self.claiming = False

    def start_claiming(self) -> None:
        self.claiming, self._drained = True, False

    async def wait_idle(self) -> None:
        """Wait until every executor call started so far has finished and been recorded."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def drain(self, grace: float) -> int:
        """Stop claiming, give in-flight calls `grace` seconds, then cancel the rest.
        Returns how many were cancelled (their rows are recovered on the next start).

        A round under way may be inside its claim's transaction: the calls it starts once that
        commits are in flight too, so they are waited for (or cancelled) like the others, never
        left running after the drain."""
        self.stop_claiming()
        sleeper = asyncio.ensure_future(self.clock.sleep(grace))
        round_over = asyncio.ensure_future(self._no_round.wait())
        try:
            while (self._tasks or not round_over.done()) and not sleeper.done():
                waits: set[asyncio.Future[Any]] = {*self._tasks, sleeper}
                if not round_over.done():
                    waits.add(round_over)
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            round_over.cancel()
        # A round still claiming after the grace starts nothing: its rows stay DISPATCHING and
        # are verified on the next start, as for a crash.
        self._drained = True
        pending = set(self._tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            log.warning("calls_cancelled_on_stop", count=len(pending))
        return len(pending)


def _call_result(batch: Batch, result: Mapping[int, Outcome] | BaseException) -> CallResult | None:
    """What the `cloud_calls` row records about how the call ended."""
    if batch.call_id is None:
        return None
    word, code, message = summarize(result)
    accepted = (
        [o for o in result.values() if isinstance(o, Accepted)]
        if isinstance(result, Mapping)
        else []
    )
    return CallResult(
        call_id=batch.call_id,
        outcome=word,
        cloud_job_id=next((a.cloud_job_id for a in accepted if a.cloud_job_id), None),
        request_id=next((a.request_id for a in accepted if a.request_id), None),
        error_code=code,
        error_message=message,
    )
