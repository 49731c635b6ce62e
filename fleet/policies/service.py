"""`PolicyService`: what the REST API, the CLI (through the API) and the scheduler call.

CRUD keeps API policies in the database (file policies are synced from `config/policies*.toml`
and cannot be edited through the API); `run_now` fires a slot by hand; `preview` shows the next
fire times (skipped ones with the reason) and the targets a fire would hit now; `fires` lists
every fire and skip; `tick` is the scheduler's one entry point. Every method may run on any
replica: exactly-once comes from the database, not from which process calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime

import structlog

from fleet.engine.admission import ActRequest
from fleet.policies.cron import Slot
from fleet.policies.firing import NO_TARGETS, Firing, manual_slot
from fleet.policies.model import (
    Policy,
    PolicyError,
    check_endpoints,
    check_set,
    compile_policy,
    parse_spec,
)
from fleet.policies.ports import OperationsPort
from fleet.policies.preview import Preview, build_preview
from fleet.policies.records import FireRecord, FireStatus, PolicyRecord, Source, Trigger
from fleet.policies.store import PolicyConflict, PolicyStore
from fleet.policies.targets import Inventory, action_params
from fleet.policies.tracking import Tracker
from fleet.policies.versioned import merge_patch
from fleet.policies.views import PolicyView, RunResult
from jobs.clock import Clock
from jobs.errors import FieldError
from jobs.errors import NotFound as JobsNotFound
from jobs.plan import NOTHING_MATCHED

log = structlog.get_logger("fleet.policies")

MAX_PREVIEW = 500
MAX_FIRES_PAGE = 500


class PolicyNotFound(LookupError):
    """No policy with that id."""


class PolicyService:
    def __init__(
        self,
        store: PolicyStore,
        operations: OperationsPort,
        inventory: Inventory,
        clock: Clock,
        worker: str,
        calendars: Mapping[str, frozenset[date]] | None,
        firing: Firing,
    ) -> None:
        self.store = store
        self.inventory = inventory
        self.clock = clock
        self.calendars = dict(calendars or {})
        self.firing = firing
        self.schedules = firing.schedules  # the named per-server schedules
        self.schedules.calendars.update(self.calendars)
        self.operations = operations
        self.on_change: Callable[[], None] | None = None  # the scheduler re-reads policies
        self.tracker: Tracker | None = None  # follows what operations did, after they finished
        self.leading = False  # this process runs the scheduler now (`/readyz`)
        self._lock = asyncio.Lock()

    # --- reading ----------------------------------------------------------------------------------

    def compile(self, record: PolicyRecord) -> Policy:
        return compile_policy(record.spec, self.calendars)

    async def loaded(self) -> list[tuple[PolicyRecord, Policy]]:
        """Every stored policy, compiled (one that no longer compiles is logged and left out)."""
        out = []
        for record in await self.store.list_policies():
            try:
                out.append((record, self.compile(record)))
            except PolicyError as exc:
                log.error("policy_invalid", policy=record.id, error=str(exc))
        return out

    async def _get(self, policy_id: str) -> tuple[PolicyRecord, Policy]:
        record = await self.store.get_policy(policy_id)
        if record is None:
            raise PolicyNotFound(f"policy {policy_id!r} not found")
        return record, self.compile(record)

    async def _view(self, record: PolicyRecord, policy: Policy | None) -> PolicyView:
        fires = await self.store.list_fires(record.id, 1)
        upcoming = None
        if policy is not None and record.spec.enabled:
            upcoming = policy.schedule.next_after(self.clock.now())
        last = await self.outcome(fires[0]) if fires else None
        return PolicyView(record, upcoming, last)

    async def list_policies(self) -> list[PolicyView]:
        compiled = {r.id: p for r, p in await self.loaded()}
        return [await self._view(r, compiled.get(r.id)) for r in await self.store.list_policies()]

    async def get_policy(self, policy_id: str) -> PolicyView:
        record, policy = await self._get(policy_id)
        return await self._view(record, policy)

    async def fires(
        self, policy_id: str | None = None, limit: int = 50, before: int | None = None
    ) -> list[FireRecord]:
        """Fires and skips, newest slot first (`before`: a fire id from the previous page)."""
        if policy_id is not None:
            await self._get(policy_id)
        page = await self.store.list_fires(policy_id, min(max(1, limit), MAX_FIRES_PAGE), before)
        return [await self.outcome(f) for f in page]

    async def outcome(self, fire: FireRecord) -> FireRecord:
        """The fire with what came of it: its operation's outcome once it has one."""
        status, reason = fire.status.value, fire.reason
        if fire.status is FireStatus.SKIPPED and fire.reason == NO_TARGETS:
            # nothing matched the selector, or what matched was all left out (with reasons)
            status = "nothing_matched" if not fire.details.get("considered") else "skipped"
        elif fire.status is FireStatus.FIRED and fire.operation_id is not None:
            try:
                view = await self.operations.get(fire.operation_id)
            except JobsNotFound:
                return replace(fire, outcome="unknown", outcome_reason="its operation is gone")
            op = view.operation
            status = view.state.value
            reason = op.refused_reason or op.halted_reason
            if op.approval is not None and status in ("pending_approval", "rejected", "expired"):
                reason = f"approval: {op.approval.reason}"
            if reason == NOTHING_MATCHED:
                status = "nothing_matched"
            elif status in ("running", "planning", "paused", "cancelling", "stopping"):
                status = "running" if status == "planning" else status
        return replace(fire, outcome=status, outcome_reason=reason)

    async def fires_page(
        self, policy_id: str | None = None, limit: int = 50, before: int | None = None
    ) -> tuple[list[FireRecord], int | None]:
        """A page of `fires` and the `before` of the next page (None: nothing older)."""
        limit = min(max(1, limit), MAX_FIRES_PAGE)
        if policy_id is not None:
            await self._get(policy_id)
        found = await self.store.list_fires(policy_id, limit + 1, before)
        page = [await self.outcome(f) for f in found[:limit]]
        return page, (page[-1].id if len(found) > limit else None)

    # --- changing (API policies only) ---------------------------------------------------------------

    async def _checked(self, raw: Mapping[str, object], replacing: str | None = None) -> Policy:
        """The spec compiled and checked against the endpoints and the other policies: a
        PolicyError names the field; a clash with another policy is a PolicyConflict."""
        policy = compile_policy(parse_spec(raw), self.calendars)
        try:
            check_endpoints([policy], set(self.inventory))
        except PolicyError as exc:
            raise PolicyError(exc.field[len("policies[0].") :], exc.message) from None
        await self._admitted(policy)
        others = [p for r, p in await self.loaded() if r.id not in (policy.name, replacing)]
        try:
            check_set([policy, *others])
        except PolicyError as exc:
            if exc.field.startswith("policies[0]"):
                raise PolicyError(exc.field[len("policies[0].") :], exc.message) from None
            raise PolicyConflict(exc.message) from None
        return policy

    async def _admitted(self, policy: Policy) -> None:
        """The operation the policy would create goes through the one door now, so a policy can
        never be stored that the operations API would refuse (its fires are admitted again with
        the servers they choose). A disabled policy acts on nothing and is admitted when it is
        enabled again. A mark policy keeps the marks itself on endpoints without a tag API, so
        only the endpoints that take tags are asked."""
        if not policy.spec.enabled:
            return
        admission = self.firing.admission
        targets = dict(policy.spec.targets)
        able = [
            n for n in sorted(self.inventory) if self.inventory[n].capabilities.has(policy.action)
        ]
        try:
            if policy.spec.mode in ("cleanup", "restore", "schedule") and not any(targets.values()):
                # its fires name the servers its tag rules (or the stop fire) chose
                if not able:
                    raise FieldError("action", f"no configured endpoint can {policy.action}")
                targets["endpoints"] = able
            if policy.spec.mode == "mark":
                admission.targets(targets)  # a mark of every server is refused like any act
                named = [str(n) for n in targets.get("endpoints") or []]  # type: ignore[attr-defined]
                taking = [n for n in (named or able) if n in able]
                if not taking:
                    return  # fleet keeps every mark itself
                targets["endpoints"] = taking
            await admission.admit(
                ActRequest(
                    action=policy.action,
                    targets=targets,
                    params=action_params(policy, self.clock.now().date()),
                    strategy=policy.strategy.to_json(),
                    guard=None if policy.guard is None else policy.guard.to_json(),
                    dry_run=True,
                    admin=True,
                )
            )
        except FieldError as exc:
            raise PolicyError(exc.field, exc.message) from None

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    async def create_policy(self, raw: Mapping[str, object], by: str) -> PolicyView:
        """Validate (PolicyError naming the field) and store; PolicyConflict if the name exists."""
        policy = await self._checked(raw)
        record = await self.store.insert_policy(policy.spec, Source.API, by, self.clock.now())
        log.info("policy_created", policy=record.id, by=by)
        self._changed()
        return await self._view(record, policy)

    async def _editable(self, policy_id: str) -> PolicyRecord:
        record = await self.store.get_policy(policy_id)
        if record is None:
            raise PolicyNotFound(f"policy {policy_id!r} not found")
        if record.source is Source.FILE:
            raise PolicyConflict(f"policy {policy_id!r} comes from a config file; edit the file")
        return record

    async def replace_policy(
        self,
        policy_id: str,
        raw: Mapping[str, object],
        by: str,
        expected_version: int | None = None,
    ) -> PolicyView:
        """PUT: the whole spec; its name must be the id. A new cron, time zone or re-enable
        starts the schedule afresh (no catch-up of the old schedule's slots)."""
        await self._editable(policy_id)
        if raw.get("name", policy_id) != policy_id:
            raise PolicyError("name", f"must be {policy_id!r} (the policy's id)")
        policy = await self._checked({**raw, "name": policy_id}, replacing=policy_id)
        now = self.clock.now()
        record = await self.store.update_policy(policy.spec, by, now, expected_version)
        if record is None:
            raise PolicyNotFound(f"policy {policy_id!r} not found")
        log.info("policy_replaced", policy=policy_id, by=by, version=record.version)
        self._changed()
        return await self._view(record, policy)

    async def patch_policy(
        self,
        policy_id: str,
        patch: Mapping[str, object],
        by: str,
        expected_version: int | None = None,
        shape: Callable[[dict[str, object]], Mapping[str, object]] | None = None,
    ) -> PolicyView:
        """PATCH: a JSON merge patch (RFC 7396) onto the stored spec, then exactly what
        `replace_policy` does with the result (`shape`: the API's check of the merged body).
        Written only if the policy is still at the version merged onto (`expected_version`,
        else the one read here): a change in between is a PolicyConflict, never lost."""
        record = await self._editable(policy_id)
        if expected_version is not None and record.version != expected_version:
            raise PolicyConflict(f"version is {record.version}, not {expected_version}")
        merged = merge_patch(record.spec.to_json(), patch)
        raw = merged if shape is None else shape(merged)
        return await self.replace_policy(policy_id, raw, by, expected_version=record.version)

    async def set_enabled(self, policy_id: str, enabled: bool, by: str) -> PolicyView:
        return await self.patch_policy(policy_id, {"enabled": enabled}, by)

    async def delete_policy(self, policy_id: str, by: str) -> None:
        """Delete an API policy (its fires stay, as history)."""
        await self._editable(policy_id)
        restorers = [p.name for _, p in await self.loaded() if p.spec.restore_from == policy_id]
        if restorers:
            raise PolicyConflict(f"{restorers[0]!r} restores what {policy_id!r} stops")
        await self.store.delete_policy(policy_id)
        log.info("policy_deleted", policy=policy_id, by=by)
        self._changed()

    async def sync_files(self, policies: Sequence[Policy], by: str = "config") -> list[str]:
        """Make the database's file policies what the files say (at start-up), each admitted
        through the one door first (a PolicyError names `policies[i].field`)."""
        for i, policy in enumerate(policies):
            try:
                await self._admitted(policy)
            except PolicyError as exc:
                raise exc.within(f"policies[{i}]") from None
        changes = await self.store.sync_files([p.spec for p in policies], by, self.clock.now())
        for change in changes:
            log.info("policy_file_synced", change=change)
        if changes:
            self._changed()
        return changes

    # --- firing -------------------------------------------------------------------------------------

    async def run_now(self, policy_id: str, by: str, slot: datetime | None = None) -> RunResult:
        """Fire now (the current minute is the slot), or re-run a named slot of the schedule.

        The same slot twice creates nothing the second time (`created` False, the first fire
        returned). A named slot that was skipped is taken over. Skip days and the misfire grace
        do not apply to a run by hand; targets' tag rules and `dry_run_only` do.
        """
        _, policy = await self._get(policy_id)
        if slot is None:
            chosen: Slot = manual_slot(policy, self.clock.now())
        else:
            found = policy.schedule.slot_at(slot)
            if found is None:
                raise PolicyError("slot", f"{slot.isoformat()} is not a fire time of this policy")
            if found.at > self.clock.now():
                raise PolicyError("slot", f"{slot.isoformat()} is in the future")
            chosen = found
        fire, created = await self.firing.fire(
            policy, chosen, trigger=Trigger.MANUAL, by=by, take_over_skipped=slot is not None
        )
        return RunResult(await self.outcome(fire), created)

    async def preview(self, policy_id: str, n: int = 20, servers: int = 200) -> Preview:
        """The next `n` fire times (skipped ones and why) and the targets a fire would hit now."""
        record, policy = await self._get(policy_id)
        n = min(max(1, n), MAX_PREVIEW)
        now = self.clock.now()
        evaluation = await self.firing.evaluate(policy, manual_slot(policy, now))
        return build_preview(record, policy, now, n, evaluation, servers)

    async def tick(self, now: datetime | None = None) -> list[Policy]:
        """The scheduler's work: finish interrupted fires, deal with every due slot, harvest what
        stop fires stopped. Returns the enabled policies (for the wake-ups)."""
        async with self._lock:
            now = now or self.clock.now()
            loaded = await self.loaded()
            policies = {p.name: p for _, p in loaded}
            await self.firing.resume(policies, now)
            await self.firing.tick(loaded, now)
            await self.firing.harvest(list(policies.values()), now)
            if self.tracker is not None:
                try:
                    await self.tracker.sweep(now, policies)
                except Exception:  # tracking must never stop the policies
                    log.exception("tracking_failed")
            return [p for p in policies.values() if p.spec.enabled]
