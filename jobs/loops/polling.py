"""The polling loop: one poll per cloud job, status reads batched where the dialect allows.

Due AWAITING sub-jobs are leased (a lease, not a transition: polling changes no state unless the
cloud says something changed); a cloud job's rows a little ahead (`poll_ahead`), its poll sent
when they are due (D108). Sub-jobs sharing a cloud job id are polled together with one call;
sub-jobs without one (per-server dialects) are grouped per operation, kind, step and rate key up
to the executor's `poll_batch`, so one status listing can answer for many servers. In the
runtime each group is polled in a task of its own (`Poller.run_once`), so rows that fall due
while a slow poll is under way are leased and polled at once; but job-less rows of a group key
whose poll is under way wait for its end and go together in the next one (one listing of what
changed answers for all of them, where several at once each read the same servers).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import timedelta

import structlog

from jobs.clock import Clock
from jobs.config import EngineConfig
from jobs.decide import Context, Phase, decide_batch
from jobs.loops.recorder import Recorder
from jobs.outcomes import Outcome
from jobs.ports import Executor, JobStore
from jobs.records import Batch, OperationRecord, SubJobRecord
from jobs.types import JSONMapping

log = structlog.get_logger("jobs.polling")


_Key = tuple[str, str, int, str]


def _key(row: SubJobRecord) -> _Key:
    """The group key of a job-less row (`poll_groups`)."""
    return (row.operation_id, row.kind, row.step, row.rate_key)


def poll_groups(
    rows: Sequence[SubJobRecord], poll_batch: Callable[[str, str], int]
) -> list[tuple[SubJobRecord, ...]]:
    """Group leased rows: one group per cloud job; job-less rows by (operation, kind, step,
    rate key) in chunks of the `poll_batch` of the kind at that rate key (the executor's choice:
    the Nova dialects read a whole group with one listing of what changed)."""
    by_job: dict[tuple[str, str, str], list[SubJobRecord]] = {}
    loose: dict[tuple[str, str, int, str], list[SubJobRecord]] = {}
    for row in rows:
        if row.cloud_job_id:
            by_job.setdefault((row.operation_id, row.rate_key, row.cloud_job_id), []).append(row)
        else:
            loose.setdefault(_key(row), []).append(row)
    groups = [tuple(g) for g in by_job.values()]
    for (_, kind, _, key), members in loose.items():
        size = max(1, poll_batch(kind, key))
        groups += [tuple(members[i : i + size]) for i in range(0, len(members), size)]
    return groups


class Poller:
    def __init__(
        self,
        store: JobStore,
        executor: Executor,
        clock: Clock,
        config: EngineConfig,
        *,
        rand: Callable[[], float] = random.random,
        notify: Callable[[], None] | None = None,
        recorder: Recorder | None = None,
        spawn: Callable[[Coroutine[None, None, None]], asyncio.Task[None]] | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.clock = clock
        self.config = config
        self.rand = rand
        self.notify = notify
        self.recorder = recorder or Recorder(store, config.worker, clock)
        self.spawn = spawn
        self._gate = asyncio.Semaphore(config.max_polls_in_flight)
        # spawned polls: their rows and, for job-less rows, their group key
        self._polls: dict[asyncio.Task[None], tuple[frozenset[int], _Key | None]] = {}
        self._waiting: list[SubJobRecord] = []  # leased, for the next poll of a busy key
        self._sleeping = 0  # spawned polls leased ahead, not yet due: they take no poll slot

    def held(self) -> set[int]:
        """Sub-jobs being polled, or leased for the next poll, by this process right now (their
        leases get renewed)."""
        return {i for ids, _ in self._polls.values() for i in ids} | {r.id for r in self._waiting}

    async def run_once(self) -> int:
        """Lease the due cloud jobs (bounded) and poll each once. Returns sub-jobs leased.

        With `spawn` (the runtime's task group) each poll runs in a task of its own and this
        returns once they are started: a slow poll (a cloud job read, a large listing) holds up
        no row that falls due meanwhile, which the next round leases (a round that waited for
        its slowest poll read the last servers of a create up to a round late). Without it,
        this waits for the polls it started."""
        held = sum(len(ids) for ids, _ in self._polls.values()) + len(self._waiting)
        limit = self.config.poll_limit - held
        if len(self._polls) - self._sleeping >= self.config.max_polls_in_flight:
            return 0  # a poll that ends wakes the loop (`notify`)
        rows: list[SubJobRecord] = []
        if limit > 0:
            now = self.clock.now()
            until = now + timedelta(seconds=self.config.lease_ttl)
            ahead = now + timedelta(seconds=self.config.poll_ahead)
            rows = list(await self.store.claim_polls(self.config.worker, now, until, limit, ahead))
        busy = {key for _, key in self._polls.values() if key is not None}
        ready = [r for r in self._waiting if _key(r) not in busy]
        self._waiting = [r for r in self._waiting if _key(r) in busy]
        if not rows and not ready:
            return 0
        params = await self._params({r.operation_id for r in [*rows, *ready]})
        groups = poll_groups(
            [*ready, *rows], lambda kind, key: self.executor.profile(kind, key).poll_batch
        )
        if self.spawn is None:
            async with asyncio.TaskGroup() as tg:
                for group in groups:
                    tg.create_task(self._poll(group, params.get(group[0].operation_id, {})))
            self._polled()
            return len(rows)
        for group in groups:
            key = None if group[0].cloud_job_id else _key(group[0])
            if key is not None and key in busy:
                self._waiting += group  # polled together once the poll under way has ended
                continue
            task = self.spawn(self._poll(group, params.get(group[0].operation_id, {})))
            self._polls[task] = (frozenset(r.id for r in group), key)
            task.add_done_callback(self._ended)
        return len(rows)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._polls.pop(task, None)
        self._polled()

    def _polled(self) -> None:
        if self.notify is not None:
            self.notify()

    async def _params(self, op_ids: set[str]) -> dict[str, JSONMapping]:
        out: dict[str, JSONMapping] = {}
        for op_id in sorted(op_ids):
            op: OperationRecord | None = await self.store.get_operation(op_id)
            if op is not None:
                out[op_id] = op.params
        return out

    async def _poll(self, group: tuple[SubJobRecord, ...], params: JSONMapping) -> None:
        first = group[0]
        batch = Batch(
            operation_id=first.operation_id,
            kind=first.kind,
            step=first.step,
            rate_key=first.rate_key,
            batch_key=first.batch_key,
            params=params,
            subjobs=group,
        )
        result: Mapping[int, Outcome] | BaseException
        # a job's rows leased ahead (`poll_ahead`): read the cloud when the first is due (a job's
        # rows usually fall due together; none is read later than it would have been)
        wait = (min(r.not_before for r in group) - self.clock.now()).total_seconds()
        if wait > 0:
            self._sleeping += 1
            try:
                await self.clock.sleep(wait)
            finally:
                self._sleeping -= 1
        async with self._gate:
            sent = self.clock.now()
            try:
                result = await self.executor.poll(batch)
            except asyncio.CancelledError:
                raise  # leases expire; the rows stay AWAITING and are polled again
            except Exception as exc:
                log.warning(
                    "poll_failed",
                    operation_id=first.operation_id,
                    cloud_job_id=first.cloud_job_id,
                    error=repr(exc),
                )
                result = exc
        ctx = Context(
            now=self.clock.now(),
            phase=Phase.POLL,
            policy=self.config.retry,
            poll_interval=self.config.poll_interval,
            max_await=self.config.max_await,
            rand=self.rand,
            policy_for=self.config.retry_for,
            sent=sent,
        )
        await self.recorder.record(decide_batch(batch, result, ctx), None)
