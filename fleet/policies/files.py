"""Policies from `config/policies*.toml` and holiday calendars from `config/calendars/*.toml`.

A policy file holds `[[policies]]` tables (see `config/policies.example.toml`) and
`[[schedules]]` tables (named per-server schedules, `fleet.policies.periods`). A calendar file
holds `dates = [2026-10-01, ...]` (TOML dates or `YYYY-MM-DD` strings) and is named by its file
stem: `skip_calendars = ["cn-holidays"]` reads `calendars/cn-holidays.toml`. Every error names the
file and the field, and nothing is half-loaded: a bad file fails the whole load.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from fleet.policies.model import Policy, PolicyError, check_set, compile_policy, parse_spec
from fleet.policies.periods import ServerSchedule, compile_schedule, parse_schedule_spec

EXAMPLE_SUFFIX = ".example.toml"


class PolicyFileError(PolicyError):
    """A bad policy or calendar file; the message starts with the file's path."""

    def __init__(self, path: Path | str, field: str, message: str) -> None:
        ValueError.__init__(self, f"{path}: {field}: {message}" if field else f"{path}: {message}")
        self.path = str(path)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class PolicySet:
    """What the files define: policies (in file order) and the calendars they may name."""

    policies: tuple[Policy, ...] = ()
    calendars: Mapping[str, frozenset[date]] = field(default_factory=dict)
    origin: Mapping[str, str] = field(default_factory=dict)  # policy name -> file
    schedules: tuple[ServerSchedule, ...] = ()  # the named per-server schedules


def policy_files(config_dir: Path | str) -> list[Path]:
    """`config/policies*.toml`, sorted, without the `*.example.toml` files (an example that
    stops servers must never become active because it sits next to the real ones)."""
    return sorted(
        p for p in Path(config_dir).glob("policies*.toml") if not p.name.endswith(EXAMPLE_SUFFIX)
    )


def _read(path: Path) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyFileError(path, "", f"cannot be read: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyFileError(path, "", f"not valid TOML: {exc}") from None


def _calendar(path: Path) -> frozenset[date]:
    data = _read(path)
    unknown = sorted(set(data) - {"dates", "description"})
    if unknown:
        raise PolicyFileError(path, unknown[0], "unknown field (a calendar has dates, description)")
    raw = data.get("dates")
    if not isinstance(raw, list):
        raise PolicyFileError(path, "dates", "must be a list of dates")
    days: set[date] = set()
    for i, value in enumerate(raw):
        try:
            days.add(value if isinstance(value, date) else date.fromisoformat(str(value)))
        except ValueError:
            raise PolicyFileError(path, f"dates[{i}]", f"{value!r} is not YYYY-MM-DD") from None
    return frozenset(days)


def load_calendars(directory: Path | str | None) -> dict[str, frozenset[date]]:
    """Every `*.toml` in `directory` as a calendar named by its stem ({} if there is none)."""
    if directory is None or not Path(directory).is_dir():
        return {}
    return {p.stem: _calendar(p) for p in sorted(Path(directory).glob("*.toml"))}


def _entries(path: Path, table: str = "policies") -> list[Mapping[str, object]]:
    data = _read(path)
    unknown = sorted(set(data) - {"policies", "schedules"})
    if unknown:
        raise PolicyFileError(
            path, unknown[0], "unknown table (policy files hold [[policies]] and [[schedules]])"
        )
    raw = data.get(table, [])
    if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
        raise PolicyFileError(path, table, f"must be [[{table}]] tables")
    return list(raw)


def _schedules(
    files: Sequence[Path], calendars: Mapping[str, frozenset[date]]
) -> tuple[ServerSchedule, ...]:
    found: dict[str, ServerSchedule] = {}
    for path in files:
        for i, raw in enumerate(_entries(path, "schedules")):
            try:
                schedule = compile_schedule(parse_schedule_spec(raw), calendars)
            except PolicyError as exc:
                raise PolicyFileError(path, f"schedules[{i}].{exc.field}", exc.message) from None
            if schedule.name in found:
                raise PolicyFileError(
                    path, f"schedules[{i}].name", f"duplicate schedule name {schedule.name!r}"
                )
            found[schedule.name] = schedule
    return tuple(found.values())


def load_policy_files(
    paths: Sequence[Path | str],
    *,
    calendar_dir: Path | str | None = None,
    endpoints: set[str] | None = None,
) -> PolicySet:
    """Read, validate and cross-check the policy files; PolicyFileError names file and field.

    `calendar_dir` defaults to `calendars/` next to the first file; `endpoints`, when given, are
    the configured endpoint names the policies' targets may use.
    """
    files = [Path(p) for p in paths]
    if calendar_dir is None and files:
        calendar_dir = files[0].parent / "calendars"
    calendars = load_calendars(calendar_dir)
    policies: list[Policy] = []
    where: list[tuple[Path, int]] = []
    for path in files:
        for i, raw in enumerate(_entries(path)):
            try:
                policies.append(compile_policy(parse_spec(raw), calendars))
            except PolicyError as exc:
                raise PolicyFileError(path, f"policies[{i}].{exc.field}", exc.message) from None
            where.append((path, i))
    try:
        check_set(policies, endpoints)
    except PolicyError as exc:
        index = int(exc.field[len("policies[") : exc.field.index("]")])
        path, local = where[index]
        rest = exc.field[exc.field.index("]") + 1 :]
        raise PolicyFileError(path, f"policies[{local}]{rest}", exc.message) from None
    origin = {p.name: str(path) for p, (path, _) in zip(policies, where, strict=True)}
    return PolicySet(tuple(policies), calendars, origin, _schedules(files, calendars))
