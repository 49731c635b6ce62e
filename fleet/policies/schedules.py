"""`ScheduleService`: the named per-server schedules, from policy files (`[[schedules]]`,
read-only) and from the API (the `schedules` table), what schedule-mode policies read at each
fire, and the per-server preview (`GET /v1/schedules/{name}/preview`).

A schedule's name is its id. A file schedule cannot be changed or deleted through the API (409),
and an API schedule cannot take a file schedule's name. Deleting a schedule that servers still
name is allowed: from then on those servers are reported as tagged with an unknown schedule and
left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import structlog

from fleet.domain import Selector, ServerRef
from fleet.policies.offhours import FROM, SCHEDULE_TAG
from fleet.policies.periods import (
    Desired,
    ScheduleError,
    ServerSchedule,
    compile_schedule,
    parse_schedule_spec,
)
from fleet.policies.store_schedules import ScheduleConflict, ScheduleRecord, ScheduleStore
from fleet.policies.targets import Inventory
from fleet.policies.versioned import merge_patch
from jobs.clock import Clock
from jobs.types import JSONObject, JSONValue

log = structlog.get_logger("fleet.policies")

NEXT = 4  # transitions shown with a schedule
MAX_SERVERS = 1000


class ScheduleNotFound(LookupError):
    """No schedule with that name."""


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ScheduleView:
    record: ScheduleRecord
    schedule: ServerSchedule | None  # None: stored but no longer valid (e.g. a calendar gone)
    now: datetime

    def to_json(self) -> JSONObject:
        r = self.record
        out: JSONObject = {
            "name": r.name,
            "source": r.source,
            "version": r.version,
            "spec": r.spec.to_json(),
            "created_at": _iso(r.created_at),
            "updated_at": _iso(r.updated_at),
            "created_by": r.created_by,
            "updated_by": r.updated_by,
            "state_now": None,
            "next_transitions": [],
        }
        s = self.schedule
        if s is not None:
            out["state_now"] = s.state_at(self.now).value
            out["next_transitions"] = [t.to_json(s.tz) for t in s.transitions(self.now, NEXT)]
        return out


def _file_record(schedule: ServerSchedule) -> ScheduleRecord:
    return ScheduleRecord(schedule.spec, "file", 1, None, None, "config", "config")


def server_preview(server: ServerRef, wanted: Desired, why: str, nxt: JSONValue) -> JSONObject:
    """One tagged server: what it is, what its schedule wants now, and what comes next."""
    action = None
    if server.status is FROM[wanted]:
        action = "stop" if wanted is Desired.STOPPED else "start"
    return {
        "endpoint": server.endpoint,
        "server_id": server.id,
        "name": server.name,
        "status": server.status.value,
        "desired_now": wanted.value,
        "why": why,
        "action_now": action,
        "next_transitions": nxt,
    }


class ScheduleService:
    def __init__(
        self,
        store: ScheduleStore,
        clock: Clock,
        calendars: Mapping[str, frozenset[date]] | None = None,
        files: Sequence[ServerSchedule] = (),
        inventory: Inventory | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.calendars = dict(calendars or {})
        self.files = {s.name: s for s in files}
        self.inventory: Inventory = inventory or {}

    def compile(self, raw: Mapping[str, object]) -> ServerSchedule:
        return compile_schedule(parse_schedule_spec(raw), self.calendars)

    async def book(self) -> dict[str, ServerSchedule]:
        """Every usable schedule by name (one that no longer compiles is logged, left out)."""
        out: dict[str, ServerSchedule] = {}
        for record in await self.store.list():
            try:
                out[record.name] = compile_schedule(record.spec, self.calendars)
            except ScheduleError as exc:
                log.error("schedule_invalid", schedule=record.name, error=str(exc))
        out.update(self.files)
        return out

    def _view(self, record: ScheduleRecord) -> ScheduleView:
        try:
            schedule: ServerSchedule | None = compile_schedule(record.spec, self.calendars)
        except ScheduleError:
            schedule = None
        return ScheduleView(record, schedule, self.clock.now())

    async def list_schedules(self) -> list[ScheduleView]:
        records = [_file_record(s) for s in self.files.values()]
        records += [r for r in await self.store.list() if r.name not in self.files]
        return [self._view(r) for r in sorted(records, key=lambda r: r.name)]

    async def _record(self, name: str) -> ScheduleRecord:
        if name in self.files:
            return _file_record(self.files[name])
        record = await self.store.get(name)
        if record is None:
            raise ScheduleNotFound(f"schedule {name!r} not found")
        return record

    async def get_schedule(self, name: str) -> ScheduleView:
        return self._view(await self._record(name))

    async def create_schedule(self, raw: Mapping[str, object], by: str) -> ScheduleView:
        schedule = self.compile(raw)
        if schedule.name in self.files:
            raise ScheduleConflict(f"{schedule.name!r} is a schedule from a config file")
        record = await self.store.insert(schedule.spec, by, self.clock.now())
        log.info("schedule_created", schedule=record.name, by=by)
        return self._view(record)

    async def _editable(self, name: str) -> None:
        if name in self.files:
            raise ScheduleConflict(f"schedule {name!r} comes from a config file; edit the file")
        if await self.store.get(name) is None:
            raise ScheduleNotFound(f"schedule {name!r} not found")

    async def replace_schedule(
        self, name: str, raw: Mapping[str, object], by: str, expected_version: int | None = None
    ) -> ScheduleView:
        await self._editable(name)
        if raw.get("name", name) != name:
            raise ScheduleError("name", f"must be {name!r} (the schedule's name)")
        schedule = self.compile({**raw, "name": name})
        record = await self.store.update(schedule.spec, by, self.clock.now(), expected_version)
        if record is None:
            raise ScheduleNotFound(f"schedule {name!r} not found")
        log.info("schedule_replaced", schedule=name, by=by, version=record.version)
        return self._view(record)

    async def patch_schedule(
        self,
        name: str,
        patch: Mapping[str, object],
        by: str,
        expected_version: int | None = None,
        shape: Callable[[dict[str, object]], Mapping[str, object]] | None = None,
    ) -> ScheduleView:
        """PATCH: a JSON merge patch (RFC 7396; a list such as `periods` is replaced whole) onto
        the stored spec, then what `replace_schedule` does with the result (`shape`: the API's
        check of the merged body). Written only if the schedule is still at the version merged
        onto (`expected_version`, else the one read here): a change in between is a conflict."""
        await self._editable(name)
        record = await self._record(name)
        if expected_version is not None and record.version != expected_version:
            raise ScheduleConflict(f"version is {record.version}, not {expected_version}")
        merged = merge_patch(record.spec.to_json(), patch)
        raw = merged if shape is None else shape(merged)
        return await self.replace_schedule(name, raw, by, expected_version=record.version)

    async def delete_schedule(self, name: str, by: str) -> ScheduleView:
        await self._editable(name)
        view = await self.get_schedule(name)
        await self.store.delete(name)
        log.info("schedule_deleted", schedule=name, by=by)
        return view

    async def preview(self, name: str, n: int = 2, servers: int = 200) -> JSONObject:
        """Every server tagged with this schedule: its status, the desired state now, whether a
        schedule policy would act on it now, and the next `n` transitions."""
        view = await self.get_schedule(name)
        schedule = view.schedule
        if schedule is None:
            raise ScheduleError("name", f"schedule {name!r} no longer compiles")
        now = self.clock.now()
        found: list[ServerRef] = []
        for endpoint in sorted(self.inventory):
            async for server in self.inventory[endpoint].list_servers(Selector()):
                if server.tags.get(SCHEDULE_TAG, "").strip() == name:
                    found.append(server)
        found.sort(key=lambda s: (s.endpoint, s.name, s.id))
        limit = min(max(0, servers), MAX_SERVERS)
        wanted, why = schedule.state_at(now), schedule.why(now)
        nxt: JSONValue = [t.to_json(schedule.tz) for t in schedule.transitions(now, max(1, n))]
        rows: list[JSONValue] = [server_preview(s, wanted, why, nxt) for s in found[:limit]]
        return {
            "schedule": name,
            "now": _iso(now),
            "state_now": wanted.value,
            "tagged": len(found),
            "servers": rows,
            "truncated": len(found) > limit,
        }
