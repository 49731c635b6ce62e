"""The policy model: `PolicySpec` (pydantic, what files and the API say) and `Policy` (the frozen,
checked form the rest of the package uses), with errors that name the field.

A policy is a cron schedule in a time zone plus what an operation needs (action, params, targets,
strategy, guard) plus the rules that make scheduled shutdowns safe: skip dates and calendars, an
opt-out tag, a snooze tag with an expiry date, restore mode, dry-run-only, and a misfire grace.
Modes:

- `normal`: act on the targets.
- `restore`: a `start` that starts only what the `restore_from` stop policy stopped and is still
  stopped (see `fleet.policies.restore`).
- `cleanup`: act on targets whose expiry tag is in the past or that are marked for this action
  (`fleet-op=stop.2026-12-01`) and due.
- `schedule`: stop (or start) the servers tagged `fleet-schedule=<name>` whose named schedule
  wants them stopped (or running) at the slot (see `fleet.policies.offhours`).
- `mark`: add the marked-for-op tag (`fleet-op=delete.<slot day + days>`) to the targets (or, on a
  dialect without a tag API, keep the mark in fleet's database; see `fleet.policies.marks`).

`enforce = true` (stop and start policies): a server of a fire that drifted (did not reach the
state, or was started by hand within the drift window) gets the action again, once per slot
(`fleet.policies.drift`).

Deleting (`action = "delete"`) needs `allow_delete = true` and a blast-radius `guard`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

from fleet.domain import EXPIRY_TAG, ActionParams
from fleet.drivers.registry import KINDS
from fleet.engine.opspec import SpecError, Targets, parse_params, parse_tag, parse_targets
from fleet.policies.cron import CronError, Schedule
from jobs.errors import FieldError, InvalidSpec
from jobs.strategy import BlastRadius, Strategy
from jobs.types import JSONObject, JSONValue

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,99}$"
MARK_TAG = r"[\u4e00-\u9fffA-Za-z0-9_-]{1,36}"  # a tag key Huawei ECS v1, BMS and Nova all take
Mode = Literal["normal", "restore", "cleanup", "mark", "schedule"]


class PolicyError(FieldError):
    """A policy that cannot work; `field` is its dotted path (e.g. `policies[1].cron`)."""


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+)\s*([smhd])")


def parse_duration(value: object) -> timedelta:
    """Seconds as a number, or a string like `90s`, `15m`, `2h`, `1d`, `1h30m`."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        parts = _DURATION.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))
    raise ValueError(f"expected seconds or a duration like '15m', '2h', '1d', got {value!r}")


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda d: d.total_seconds(), return_type=float),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CleanupSpec(_Strict):
    """Which tags make a server due for a clean-up policy's action."""

    expiry_tag: str | None = EXPIRY_TAG  # value YYYY-MM-DD: due once that day is in the past
    op_tag: str | None = "fleet-op"  # value ACTION.YYYY-MM-DD (or ACTION@...): due on that day


class MarkSpec(_Strict):
    """What a marking policy writes: `{tag}={op}.{slot day + days}`."""

    op: str
    days: int = Field(ge=0, le=3650)
    tag: str = "fleet-op"


class PolicySpec(_Strict):
    """A policy as written in `config/policies*.toml` or sent to `/v1/policies`."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    enabled: bool = True
    cron: str
    timezone: str = "UTC"
    mode: Mode = "normal"
    action: str | None = None
    params: dict[str, object] = Field(default_factory=dict)
    targets: dict[str, object] = Field(default_factory=dict)
    strategy: dict[str, object] = Field(default_factory=dict)
    guard: dict[str, object] | None = None
    skip_dates: list[date] = Field(default_factory=list)
    skip_calendars: list[str] = Field(default_factory=list)
    opt_out_tag: str | None = "fleet-opt-out=true"
    snooze_tag: str | None = "fleet-snooze-until"
    restore_from: str | None = None
    restore_window: Duration = timedelta(days=7)
    cleanup: CleanupSpec | None = None
    mark: MarkSpec | None = None
    allow_delete: bool = False
    enforce: bool = False
    dry_run_only: bool = False
    require_approval: bool = False  # each fire's operation waits for a token's approval
    misfire_grace: Duration = timedelta(minutes=15)

    def to_json(self) -> JSONObject:
        data: JSONObject = json.loads(self.model_dump_json())
        return data


def describe(exc: ValidationError, prefix: str = "") -> PolicyError:
    """pydantic's errors as one PolicyError naming the first field (later ones in the message)."""
    found: list[tuple[str, str]] = []
    for err in exc.errors():
        loc = prefix
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        found.append((loc or "policy", err["msg"]))
    (field, message), rest = found[0], found[1:]
    return PolicyError(field, "; ".join([message, *(f"{f}: {m}" for f, m in rest)]))


def parse_spec(raw: Mapping[str, object], prefix: str = "") -> PolicySpec:
    """JSON/TOML -> PolicySpec, or PolicyError naming the field."""
    try:
        return PolicySpec.model_validate(dict(raw))
    except ValidationError as exc:
        raise describe(exc, prefix) from None


@dataclass(frozen=True)
class Policy:
    """A checked policy: the spec plus its parsed parts (built only by `compile_policy`)."""

    spec: PolicySpec
    schedule: Schedule
    targets: Targets
    params: ActionParams
    strategy: Strategy
    guard: BlastRadius | None
    skip: Mapping[date, str]  # day -> why ("skip date", "calendar cn-holidays")
    opt_out: tuple[str, str] | None  # (key, value); value "" = any value

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def action(self) -> str:
        return self.spec.action or "tag_add"


def _json_safe(value: object, field: str) -> JSONValue:
    try:
        out: JSONValue = json.loads(json.dumps(value))
    except (TypeError, ValueError):
        raise PolicyError(
            field, "must hold only JSON values (strings, numbers, lists...)"
        ) from None
    return out


def _check_action(spec: PolicySpec) -> str:
    if spec.mode == "mark":
        if spec.action not in (None, "tag_add"):
            raise PolicyError("action", "a mark policy adds a tag: omit action or use tag_add")
        if spec.mark is None:
            raise PolicyError("mark", "mode = 'mark' needs a [mark] table (op, days)")
        if spec.mark.op not in KINDS:
            raise PolicyError("mark.op", f"unknown action {spec.mark.op!r}")
        return "tag_add"
    if spec.action is None:
        raise PolicyError("action", f"required; one of {', '.join(KINDS)}")
    if spec.action not in KINDS:
        raise PolicyError("action", f"unknown action {spec.action!r}; one of {', '.join(KINDS)}")
    if spec.mark is not None:
        raise PolicyError("mark", "only with mode = 'mark'")
    return spec.action


def _check_mode(spec: PolicySpec, action: str, guard: BlastRadius | None) -> None:
    if spec.mode == "restore":
        if action != "start":
            raise PolicyError("action", "a restore policy starts servers: action must be start")
        if not spec.restore_from:
            raise PolicyError("restore_from", "mode = 'restore' needs the stop policy's name")
    elif spec.restore_from is not None:
        raise PolicyError("restore_from", "only with mode = 'restore'")
    _check_state_modes(spec, action)
    if spec.cleanup is not None and spec.mode != "cleanup":
        raise PolicyError("cleanup", "only with mode = 'cleanup'")
    cleanup = spec.cleanup or CleanupSpec()
    if spec.mode == "cleanup" and not (cleanup.expiry_tag or cleanup.op_tag):
        raise PolicyError("cleanup", "needs expiry_tag, op_tag or both")
    if action == "delete":
        if not spec.allow_delete:
            raise PolicyError("allow_delete", "a policy that deletes must say allow_delete = true")
        if guard is None or (guard.max_servers is None and guard.max_percent is None):
            raise PolicyError("guard", "a policy that deletes needs max_servers or max_percent")
        if spec.mode not in ("cleanup",):
            raise PolicyError("mode", "delete is for clean-up policies only (mode = 'cleanup')")


def _check_state_modes(spec: PolicySpec, action: str) -> None:
    """Enforcing a state and per-server schedules are for stop and start only."""
    if spec.enforce and (action not in ("stop", "start") or spec.mode == "mark"):
        raise PolicyError("enforce", "only a stop or start policy can enforce its state")
    if spec.mode == "schedule" and action not in ("stop", "start"):
        raise PolicyError(
            "action", "a schedule policy stops or starts servers: action must be stop or start"
        )


def _tag(text: str | None, field: str) -> tuple[str, str] | None:
    if text is None:
        return None
    try:
        return parse_tag(text, field)
    except SpecError as exc:
        raise PolicyError(field, exc.message) from None


def _skip_days(spec: PolicySpec, calendars: Mapping[str, frozenset[date]]) -> dict[date, str]:
    days: dict[date, str] = {}
    for i, name in enumerate(spec.skip_calendars):
        if name not in calendars:
            known = ", ".join(sorted(calendars)) or "none loaded"
            raise PolicyError(f"skip_calendars[{i}]", f"unknown calendar {name!r} ({known})")
        days.update(dict.fromkeys(calendars[name], f"calendar {name}"))
    days.update(dict.fromkeys(spec.skip_dates, "skip date"))
    return days


def _parts(spec: PolicySpec, action: str) -> tuple[Targets, ActionParams, Strategy]:
    raw_targets = _json_safe(spec.targets, "targets")
    raw_params = _json_safe(spec.params, "params")
    assert isinstance(raw_targets, dict) and isinstance(raw_params, dict)
    if spec.mode == "mark":
        if raw_params:
            raise PolicyError("params", "a mark policy computes its tag; leave params empty")
        assert spec.mark is not None
        if not re.fullmatch(MARK_TAG, spec.mark.tag):
            raise PolicyError(
                "mark.tag", "1 to 36 letters, digits, '-' or '_' (a key every dialect takes)"
            )
        raw_params = {"tags": {spec.mark.tag: f"{spec.mark.op}.2000-01-01"}}
    try:
        targets = parse_targets(raw_targets)
        params = parse_params(action, raw_params)
    except SpecError as exc:
        field = exc.field.replace("selector.", "targets.", 1)
        raise PolicyError(field, exc.message) from None
    try:
        strategy = Strategy.from_json(spec.strategy)
    except InvalidSpec as exc:
        raise PolicyError(f"strategy.{exc.field}", str(exc).split(": ", 1)[-1]) from None
    return targets, params, strategy


def compile_policy(
    spec: PolicySpec, calendars: Mapping[str, frozenset[date]] | None = None
) -> Policy:
    """Check everything that does not need other policies or the endpoints; PolicyError names
    the field."""
    try:
        schedule = Schedule.of(spec.cron, spec.timezone)
    except CronError as exc:
        field = "timezone" if "time zone" in str(exc) else "cron"
        raise PolicyError(field, str(exc)) from None
    if spec.misfire_grace < timedelta(seconds=1):
        raise PolicyError("misfire_grace", "must be at least one second")
    action = _check_action(spec)
    try:
        guard = None if spec.guard is None else BlastRadius.from_json(spec.guard)
    except InvalidSpec as exc:
        raise PolicyError(f"guard.{exc.field}", str(exc).split(": ", 1)[-1]) from None
    _check_mode(spec, action, guard)
    targets, params, strategy = _parts(spec, action)
    return Policy(
        spec=spec,
        schedule=schedule,
        targets=targets,
        params=params,
        strategy=strategy,
        guard=guard,
        skip=_skip_days(spec, calendars or {}),
        opt_out=_tag(spec.opt_out_tag or None, "opt_out_tag"),
    )


def check_set(policies: list[Policy], endpoints: set[str] | None = None) -> None:
    """Rules between policies (unique names, restore pairs) and, when known, the endpoints.
    PolicyError fields are `policies[i].field` in the order given."""
    by_name: dict[str, int] = {}
    restored: dict[str, str] = {}
    for i, p in enumerate(policies):
        if p.name in by_name:
            raise PolicyError(f"policies[{i}].name", f"duplicate policy name {p.name!r}")
        by_name[p.name] = i
    for i, p in enumerate(policies):
        source = p.spec.restore_from
        if source is not None:
            paired = policies[by_name[source]] if source in by_name else None
            if paired is None or paired.spec.action != "stop":
                raise PolicyError(
                    f"policies[{i}].restore_from", f"{source!r} is not a stop policy here"
                )
            if source in restored:
                raise PolicyError(
                    f"policies[{i}].restore_from",
                    f"{source!r} is already restored by {restored[source]!r}",
                )
            restored[source] = p.name
    if endpoints is not None:
        check_endpoints(policies, endpoints)


def check_endpoints(policies: list[Policy], endpoints: set[str]) -> None:
    """Every endpoint a policy's targets name is configured (`policies[i].targets.endpoints`)."""
    for i, p in enumerate(policies):
        unknown = [e for e in p.targets.endpoints if e not in endpoints]
        if unknown:
            raise PolicyError(
                f"policies[{i}].targets.endpoints", f"unknown endpoint {unknown[0]!r}"
            )
