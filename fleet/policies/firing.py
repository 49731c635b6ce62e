"""Firing: which slots are due, which are skipped and why, and the exactly-once fire itself.

The database decides, not the scheduler. `tick(now)` looks at each enabled policy's slots after its
watermark (the later of `active_since` and the last slot the schedule recorded) up to `now`:

- a slot on a skip day is recorded SKIPPED with the calendar that says so;
- the most recent runnable slot fires if it is late by less than `misfire_grace` (on time, or
  after a short outage: it runs once);
- every other slot is recorded SKIPPED: "missed by ..." beyond the grace, or "coalesced" into
  the slot that runs instead (several missed slots run once, not in a burst).

A fire claims its (policy, slot) row first (unique: a second replica, a restart or a repeated run
of the slot gets the existing row and creates nothing), evaluates the targets, writes the
operation it will create into the row, then creates it under the idempotency key
`policy:{id}:{slot UTC}`. A process that dies half-way leaves a FIRING row that `resume` finishes
with the very same operation. Manual runs (`run now`) take the current minute as their slot, or
re-run a named slot (taking it over if it was skipped), and ignore skip days and the grace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from fleet.drivers.errors import DriverError
from fleet.policies.cron import Slot, key_time
from fleet.policies.model import Policy
from fleet.policies.offhours import evaluate_schedule
from fleet.policies.ports import Admitter, OperationsPort
from fleet.policies.records import FireRecord, FireStatus, PolicyRecord, Trigger
from fleet.policies.restore import evaluate_restore, harvest
from fleet.policies.schedules import ScheduleService
from fleet.policies.store import PolicyStore
from fleet.policies.store_schedules import ScheduleStore
from fleet.policies.targets import (
    Evaluation,
    Inventory,
    TargetsUnavailable,
    evaluate,
    operation_request,
    request_from_json,
    request_json,
)
from jobs.clock import Clock
from jobs.errors import FieldError, IdempotencyConflict
from jobs.types import JSONMapping

log = structlog.get_logger("fleet.policies")

MAX_LOOKBACK = timedelta(days=31)  # catch-up never reaches further back than this
MAX_CATCHUP = 10_000  # slots recorded per policy per tick (the most recent ones)
NO_TARGETS = "no servers to act on"


def slot_key(policy_id: str, at: datetime) -> str:
    return f"policy:{policy_id}:{key_time(at)}"


def _span(d: timedelta) -> str:
    """`2d20m`, `15m`, `90s` -> `1m30s` (the way durations are written in policies)."""
    seconds, parts = int(d.total_seconds()), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


@dataclass(frozen=True)
class SlotPlan:
    skips: tuple[tuple[Slot, str], ...]
    fire: Slot | None


def plan_slots(
    policy: Policy, slots: Sequence[Slot], recorded: set[datetime], now: datetime
) -> SlotPlan:
    """What to do with the due `slots` (oldest first) that are not `recorded` yet."""
    grace = policy.spec.misfire_grace
    runnable = [s for s in slots if s.local_date not in policy.skip]
    latest = runnable[-1] if runnable else None
    fire = None
    if latest is not None and latest.at not in recorded and now - latest.at < grace:
        fire = latest
    skips: list[tuple[Slot, str]] = []
    for s in slots:
        if s.at in recorded or s is fire:
            continue
        if s.local_date in policy.skip:
            reason = f"skip day {s.local_date.isoformat()} ({policy.skip[s.local_date]})"
        elif fire is not None:
            reason = f"missed; coalesced into the slot at {key_time(fire.at)}"
        else:
            reason = f"missed by {_span(now - s.at)} (misfire_grace {_span(grace)})"
        skips.append((s, reason))
    return SlotPlan(tuple(skips), fire)


def manual_slot(policy: Policy, now: datetime) -> Slot:
    """`run now`: the current minute, so a repeated click within the minute is the same slot."""
    at = now.astimezone(UTC).replace(second=0, microsecond=0)
    return Slot(at, at.astimezone(policy.schedule.tz).replace(tzinfo=None), "run now")


def slot_of(policy: Policy, at: datetime) -> Slot:
    return policy.schedule.slot_at(at) or Slot(
        at, at.astimezone(policy.schedule.tz).replace(tzinfo=None), "run now"
    )


class Firing:
    def __init__(
        self,
        store: PolicyStore,
        operations: OperationsPort,
        inventory: Inventory,
        clock: Clock,
        worker: str,
        *,
        stale_after: timedelta = timedelta(minutes=2),
        admission: Admitter,
        schedules: ScheduleService | None = None,
    ) -> None:
        self.store = store
        self.operations = operations
        self.inventory = inventory
        self.clock = clock
        self.worker = worker
        self.stale_after = stale_after
        self.admission = admission  # the one door every request to act goes through
        # the named per-server schedules schedule-mode policies read
        self.schedules = schedules or ScheduleService(
            ScheduleStore(store.db), clock, inventory=inventory
        )

    async def evaluate(self, policy: Policy, slot: Slot, fire_id: int | None = None) -> Evaluation:
        if policy.spec.mode == "restore":
            return await evaluate_restore(
                policy, self.store, self.operations, self.inventory, slot.at, slot.local_date,
                fire_id,
            )  # fmt: skip
        if policy.spec.mode == "schedule":
            book = await self.schedules.book()
            return await evaluate_schedule(policy, self.inventory, slot.at, slot.local_date, book)
        return await evaluate(policy, self.inventory, slot.local_date, self.store)

    async def fire(
        self,
        policy: Policy,
        slot: Slot,
        *,
        trigger: Trigger,
        by: str,
        take_over_skipped: bool = False,
    ) -> tuple[FireRecord, bool]:
        """Fire one slot exactly once: (the slot's record, whether this call fired it)."""
        record, created = await self.store.claim(
            policy.name,
            slot.at,
            trigger=trigger,
            key=slot_key(policy.name, slot.at),
            dry_run=policy.spec.dry_run_only,
            worker=self.worker,
            by=by,
            now=self.clock.now(),
            take_over_skipped=take_over_skipped,
        )
        if not created:
            log.info("policy_slot_taken", policy=policy.name, slot=key_time(slot.at))
            return record, False
        return await self._complete(policy, record, slot), True

    async def _complete(self, policy: Policy, record: FireRecord, slot: Slot) -> FireRecord:
        request = record.request
        if request is None:
            try:
                evaluation = await self.evaluate(policy, slot, record.id)
            except (DriverError, TargetsUnavailable) as exc:
                return await self._not_evaluated(policy, record, f"listing failed: {exc}")
            decided = await self._request(policy, record, slot, evaluation)
            if isinstance(decided, FireRecord):
                return decided
            request = decided
        try:
            view, _ = await self.operations.create(request_from_json(request))
        except IdempotencyConflict as exc:
            return await self.store.finish(
                record.id, FireStatus.FAILED, self.clock.now(), reason=str(exc)
            )
        done = await self.store.finish(
            record.id, FireStatus.FIRED, self.clock.now(), operation_id=view.operation.id
        )
        log.info(
            "policy_fired",
            policy=policy.name,
            slot=key_time(slot.at),
            operation_id=view.operation.id,
            targets=done.targets,
            dry_run=done.dry_run,
        )
        return done

    async def _request(
        self, policy: Policy, record: FireRecord, slot: Slot, evaluation: Evaluation
    ) -> FireRecord | JSONMapping:
        """The operation the fire creates, admitted through the one door before anything else
        is written (restored fires consumed, marks kept): a refused fire leaves no trace but its
        record. A FireRecord when the fire ends here (nothing to act on, refused, marks only)."""
        refusal = self._own_refusal(policy)
        if refusal is not None:
            log.warning("policy_fire_refused", policy=policy.name, reason=refusal)
            return await self._finish(record, FireStatus.REFUSED, refusal, evaluation)
        if not evaluation.acting:
            await self.store.consume(evaluation.consumed, record.id)
            return await self._finish(record, FireStatus.SKIPPED, NO_TARGETS, evaluation)
        new = None
        if evaluation.operating:
            local = slot.at.astimezone(policy.schedule.tz).isoformat()
            act = operation_request(
                policy,
                evaluation,
                key=record.idempotency_key,
                reason=f"policy {policy.name}: {record.trigger.value} slot {local}",
                by=f"policy:{policy.name}" if record.trigger is Trigger.SCHEDULE else record.by,
            )
            try:
                new = await self.admission.admit(act)
            except FieldError as exc:
                log.warning("policy_fire_refused", policy=policy.name, reason=str(exc))
                return await self._finish(record, FireStatus.REFUSED, str(exc), evaluation)
        await self.store.consume(evaluation.consumed, record.id)
        if evaluation.kept_marks:
            done = await self._keep_marks(policy, record, evaluation)
            if done is not None:
                return done
        assert new is not None  # something to operate on, or the marks ended the fire
        return await self.store.set_request(
            record.id, request_json(new), len(evaluation.operating), evaluation.details()
        )

    def _own_refusal(self, policy: Policy) -> str | None:
        """A policy stored before the door checked it (an empty selector in normal or mark
        mode) is refused at each fire: its fire names servers, which would hide the problem."""
        if policy.spec.mode in ("cleanup", "restore", "schedule"):
            return None  # their tag rules, or the stop fire, choose the servers
        try:
            self.admission.targets(policy.spec.targets)
        except FieldError as exc:
            return str(exc)
        return None

    async def _finish(
        self, record: FireRecord, status: FireStatus, reason: str, evaluation: Evaluation
    ) -> FireRecord:
        done = await self.store.finish(
            record.id, status, self.clock.now(), reason=reason, details=evaluation.details()
        )
        log.info("policy_fire_skipped", policy=record.policy_id, reason=reason)
        return done

    async def _keep_marks(
        self, policy: Policy, record: FireRecord, evaluation: Evaluation
    ) -> FireRecord | None:
        """Keep the marks of servers whose dialect has no tag API (not on a dry run); the fire is
        over (FIRED, no operation) when no server is left for the `tag_add` operation."""
        now, count = self.clock.now(), len(evaluation.kept_marks)
        if not policy.spec.dry_run_only:
            await self.store.keep_marks(
                evaluation.kept_marks, policy_id=policy.name, fire_id=record.id, now=now
            )
        log.info("policy_marks_kept", policy=policy.name, count=count, dry_run=record.dry_run)
        if evaluation.operating:
            return None
        reason = f"{count} mark(s) kept by fleet (no tag API)"
        if policy.spec.dry_run_only:
            reason = f"dry run: {count} mark(s) fleet would keep (no tag API)"
        return await self.store.finish(
            record.id, FireStatus.FIRED, now, reason=reason, details=evaluation.details()
        )

    async def _not_evaluated(self, policy: Policy, record: FireRecord, error: str) -> FireRecord:
        """A manual run fails at once; a scheduled slot is retried (`resume`) within its grace."""
        now = self.clock.now()
        late = now - record.scheduled_at >= policy.spec.misfire_grace
        if record.trigger is Trigger.MANUAL or late:
            log.warning("policy_fire_failed", policy=policy.name, error=error)
            return await self.store.finish(record.id, FireStatus.FAILED, now, reason=error)
        log.warning("policy_fire_retrying", policy=policy.name, error=error)
        return record

    # --- the schedule ---------------------------------------------------------------------------

    async def tick(self, policies: Sequence[tuple[PolicyRecord, Policy]], now: datetime) -> int:
        """Deal with every due slot of every enabled policy; returns the slots recorded."""
        count = 0
        for record, policy in policies:
            if not policy.spec.enabled:
                continue
            try:
                count += await self._tick_policy(record, policy, now)
            except Exception:  # one broken policy must not stop the others
                log.exception("policy_tick_failed", policy=policy.name)
        return count

    async def _tick_policy(self, record: PolicyRecord, policy: Policy, now: datetime) -> int:
        last = await self.store.last_scheduled(record.id)
        since = max(record.active_since, last or record.active_since, now - MAX_LOOKBACK)
        slots = policy.schedule.between(since, now, MAX_CATCHUP)
        if not slots:
            return 0
        recorded = await self.store.recorded_slots(record.id, slots[0].at, slots[-1].at)
        plan = plan_slots(policy, slots, recorded, now)
        if plan.skips:
            await self.store.record_skips(
                record.id,
                [(s.at, reason, slot_key(record.id, s.at)) for s, reason in plan.skips],
                dry_run=policy.spec.dry_run_only,
                worker=self.worker,
                now=now,
            )
            log.info("policy_slots_skipped", policy=policy.name, count=len(plan.skips))
        if plan.fire is not None:
            await self.fire(policy, plan.fire, trigger=Trigger.SCHEDULE, by="schedule")
        return len(plan.skips) + (plan.fire is not None)

    async def resume(self, policies: Mapping[str, Policy], now: datetime) -> int:
        """Finish fires a process left half-done (FIRING rows)."""
        count = 0
        for record in await self.store.unfinished():
            policy = policies.get(record.policy_id)
            if policy is None:
                await self.store.finish(
                    record.id, FireStatus.FAILED, now, reason="the policy no longer exists"
                )
                continue
            if record.request is None and not self._orphaned(record, now):
                continue  # its owner may still be evaluating it
            try:
                await self._complete(policy, record, slot_of(policy, record.scheduled_at))
                count += 1
            except Exception:
                log.exception("policy_resume_failed", policy=policy.name, fire_id=record.id)
        return count

    def _orphaned(self, record: FireRecord, now: datetime) -> bool:
        """May a claim without its request be redone now? A scheduled slot is claimed only by
        the leader, and `resume` runs only in the leader: one claimed by another worker was
        claimed by a leader that is gone (killed, or stepped down), so it is redone at once (the
        same idempotency key keeps it to one operation). Any other claim may still be evaluated
        by a live process (a manual run, or this process's own), so it waits `stale_after`."""
        if record.trigger is Trigger.SCHEDULE and record.worker != self.worker:
            return True
        return now - record.claimed_at >= self.stale_after

    async def harvest(self, policies: Sequence[Policy], now: datetime) -> int:
        """Record what finished stop fires stopped, for the restore policies that pair with them."""
        count = 0
        for policy in policies:
            source = policy.spec.restore_from
            if source is None:
                continue
            fires = await self.store.stop_fires(
                source, now - policy.spec.restore_window, now, unharvested=True
            )
            for fire in fires:
                try:
                    count += await harvest(self.store, self.operations, self.inventory, fire, now)
                except Exception:
                    log.exception("policy_harvest_failed", policy=source, fire_id=fire.id)
        return count
