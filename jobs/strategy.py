"""How an operation spends its targets: in-flight cap, error budget, waves, blast radius.

Pure functions with exact arithmetic (fractions, never floats) so the documented examples hold to
the server: with 50 targets and ``max_errors="10%"`` the budget is 5 failures and the 6th failure
stops the operation; with ``max_errors=3`` the 4th does. Waves follow the familiar rolling-update
convention: each entry is a wave size (a count or a percentage of the targets, rounded down but at
least 1), and the last entry repeats until every target has a wave, so ``[1, "10%", "100%"]`` over
50 targets gives waves of 1, 5 and 44.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeAlias, TypeVar

from jobs.errors import InvalidSpec
from jobs.types import JSONObject, JSONValue

UNBOUNDED = sys.maxsize


@dataclass(frozen=True)
class Percent:
    value: Fraction  # 10% is Fraction(10)

    def of(self, total: int) -> Fraction:
        return Fraction(total) * self.value / 100

    def __str__(self) -> str:
        v = self.value
        return f"{v.numerator}%" if v.denominator == 1 else f"{float(v):g}%"


Amount: TypeAlias = int | Percent


def parse_amount(raw: object, field: str, *, minimum: int = 0) -> Amount:
    """An int, a digit string, or a percentage string like ``"10%"`` or ``"2.5%"``."""
    if isinstance(raw, bool):
        raise InvalidSpec(field, "expected a count or a percentage, got a boolean")
    if isinstance(raw, int):
        if raw < minimum:
            raise InvalidSpec(field, f"must be >= {minimum}, got {raw}")
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if text.endswith("%"):
            try:
                value = Fraction(text[:-1].strip())
            except (ValueError, ZeroDivisionError):
                raise InvalidSpec(field, f"not a percentage: {raw!r}") from None
            if not (value >= 0 and value <= 100) or (minimum > 0 and value == 0):
                raise InvalidSpec(field, f"percentage out of range: {raw!r}")
            return Percent(value)
        if text.isdigit():
            return parse_amount(int(text), field, minimum=minimum)
    raise InvalidSpec(field, f"expected a count or a percentage like '10%', got {raw!r}")


def amount_json(amount: Amount) -> JSONValue:
    return amount if isinstance(amount, int) else str(amount)


@dataclass(frozen=True)
class Strategy:
    max_in_flight: int | None = None  # servers in flight at once (dispatching + awaiting)
    max_errors: Amount | None = None  # failures tolerated; exceeding it stops the operation
    waves: tuple[Amount, ...] = ()  # () = a single wave of every target
    pause_after_wave: bool = False  # pause after each wave until resumed

    def to_json(self) -> JSONObject:
        return {
            "max_in_flight": self.max_in_flight,
            "max_errors": None if self.max_errors is None else amount_json(self.max_errors),
            "waves": [amount_json(w) for w in self.waves],
            "pause_after_wave": self.pause_after_wave,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> Strategy:
        mif = raw.get("max_in_flight")
        if mif is not None and (not isinstance(mif, int) or isinstance(mif, bool) or mif < 1):
            raise InvalidSpec("max_in_flight", f"must be a positive integer, got {mif!r}")
        me = raw.get("max_errors")
        waves = raw.get("waves") or []
        if not isinstance(waves, list | tuple):
            raise InvalidSpec("waves", "must be a list")
        return cls(
            max_in_flight=mif,
            max_errors=None if me is None else parse_amount(me, "max_errors"),
            waves=tuple(parse_amount(w, f"waves[{i}]", minimum=1) for i, w in enumerate(waves)),
            pause_after_wave=bool(raw.get("pause_after_wave", False)),
        )


def errors_exceeded(failed: int, targets: int, max_errors: Amount | None) -> bool:
    """True when `failed` is more than the budget allows (the operation must stop)."""
    if max_errors is None:
        return False
    if isinstance(max_errors, int):
        return failed > max_errors
    return failed > max_errors.of(targets)


def allowed_failures(targets: int, max_errors: Amount | None) -> int | None:
    """How many failures are tolerated (None = unlimited); the next one stops the operation."""
    if max_errors is None:
        return None
    if isinstance(max_errors, int):
        return max_errors
    return math.floor(max_errors.of(targets))


def in_flight_allowance(max_in_flight: int | None, in_flight: int) -> int:
    if max_in_flight is None:
        return UNBOUNDED
    return max(0, max_in_flight - in_flight)


def _wave_size(targets: int, amount: Amount) -> int:
    raw = amount if isinstance(amount, int) else math.floor(amount.of(targets))
    return max(1, raw)


def wave_end(targets: int, waves: Sequence[Amount], index: int) -> int:
    """Exclusive end, in target order, of wave `index` (0-based): targets before it may run."""
    if not waves or targets <= 0:
        return max(0, targets)
    sizes = [_wave_size(targets, w) for w in waves]
    end = 0
    explicit = len(sizes) - 1
    for i in range(min(index + 1, explicit)):
        end = min(targets, end + sizes[i])
    if index >= explicit:
        end = min(targets, end + (index - explicit + 1) * sizes[-1])
    return end


def wave_count(targets: int, waves: Sequence[Amount]) -> int:
    if targets <= 0:
        return 0
    if not waves:
        return 1
    sizes = [_wave_size(targets, w) for w in waves]
    end, count = 0, 0
    for size in sizes[:-1]:
        end, count = min(targets, end + size), count + 1
        if end >= targets:
            return count
    return count + math.ceil((targets - end) / sizes[-1])


def wave_sizes(targets: int, waves: Sequence[Amount]) -> list[int]:
    """Every wave's size (for plans and tests; linear in the number of waves)."""
    ends = [wave_end(targets, waves, i) for i in range(wave_count(targets, waves))]
    if not ends:
        return []
    return [b - a for a, b in zip([0, *ends[:-1]], ends, strict=True)]


@dataclass(frozen=True)
class BlastRadius:
    """Refuse an operation that would act on more than this (checked after planning)."""

    max_servers: int | None = None
    max_percent: Fraction | None = None  # of each scope's (endpoint's) fleet

    def to_json(self) -> JSONObject:
        pct = None if self.max_percent is None else str(Percent(self.max_percent))
        return {"max_servers": self.max_servers, "max_percent": pct}

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> BlastRadius:
        ms = raw.get("max_servers")
        if ms is not None and (not isinstance(ms, int) or isinstance(ms, bool) or ms < 0):
            raise InvalidSpec("max_servers", f"must be a non-negative integer, got {ms!r}")
        mp = raw.get("max_percent")
        pct: Fraction | None = None
        if mp is not None:
            text = mp if isinstance(mp, str) and mp.strip().endswith("%") else f"{mp}%"
            amount = parse_amount(text, "max_percent")
            assert isinstance(amount, Percent)
            pct = amount.value
        return cls(max_servers=ms, max_percent=pct)


_Limit = TypeVar("_Limit", int, Fraction)


def _smaller(a: _Limit | None, b: _Limit | None) -> _Limit | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def stricter(*guards: BlastRadius | None) -> BlastRadius | None:
    """Per limit, the smallest of the guards' (a limit absent from one is taken from the others;
    None when no guard limits anything): how a request or a policy tightens the limits an admin
    configured on the endpoints, never loosening them."""
    present = [g for g in guards if g is not None]
    servers: int | None = None
    percent: Fraction | None = None
    for guard in present:
        servers = _smaller(servers, guard.max_servers)
        percent = _smaller(percent, guard.max_percent)
    return None if servers is None and percent is None else BlastRadius(servers, percent)


def blast_radius_refusal(
    guard: BlastRadius | None,
    acting: int,
    acting_by_scope: Mapping[str, int],
    fleet_by_scope: Mapping[str, int],
) -> str | None:
    """Why the operation must be refused, or None. A percentage guard that cannot be evaluated
    (the planner reported no fleet size for a scope) refuses rather than passing silently."""
    if guard is None:
        return None
    if guard.max_servers is not None and acting > guard.max_servers:
        return f"blast radius: {acting} servers > max_servers {guard.max_servers}"
    if guard.max_percent is None:
        return None
    pct = Percent(guard.max_percent)
    for scope in sorted(acting_by_scope):
        count = acting_by_scope[scope]
        fleet = fleet_by_scope.get(scope)
        if fleet is None:
            return (
                f"blast radius: fleet size of {scope or 'the endpoint'!r} unknown for max_percent"
            )
        if count * 100 > guard.max_percent * fleet:
            share = f"{count}/{fleet}"
            return f"blast radius: {share} servers of {scope or 'the fleet'!r} > max_percent {pct}"
    return None
