"""Strategy arithmetic: error budget, waves, in-flight cap, blast radius (exact, table-driven)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.errors import InvalidSpec
from jobs.strategy import (
    UNBOUNDED,
    Amount,
    BlastRadius,
    Percent,
    Strategy,
    allowed_failures,
    blast_radius_refusal,
    errors_exceeded,
    in_flight_allowance,
    parse_amount,
    stricter,
    wave_count,
    wave_end,
    wave_sizes,
)


def first_stopping_failure(targets: int, max_errors: Amount | None) -> int | None:
    for failed in range(targets + 1):  # there cannot be more failures than targets
        if errors_exceeded(failed, targets, max_errors):
            return failed
    return None


@pytest.mark.parametrize(
    ("targets", "max_errors", "stops_at"),
    [
        (50, "10%", 6),  # the documented example: the 6th failure stops it
        (55, "10%", 6),  # 5.5 allowed: the 6th failure exceeds it
        (59, "10%", 6),
        (60, "10%", 7),
        (200, "2.5%", 6),
        (10, "0%", 1),
        (50, 3, 4),
        (50, 0, 1),
        (5, "100%", None),  # failures can never exceed every target
        (50, None, None),
    ],
)
def test_the_error_budget_stops_on_the_documented_failure(
    targets: int, max_errors: int | str | None, stops_at: int | None
) -> None:
    amount = None if max_errors is None else parse_amount(max_errors, "max_errors")
    assert first_stopping_failure(targets, amount) == stops_at


@pytest.mark.parametrize(
    ("targets", "max_errors", "allowed"),
    [(50, "10%", 5), (55, "10%", 5), (50, 3, 3), (7, "50%", 3), (10, None, None)],
)
def test_allowed_failures(targets: int, max_errors: int | str | None, allowed: int | None) -> None:
    amount = None if max_errors is None else parse_amount(max_errors, "max_errors")
    assert allowed_failures(targets, amount) == allowed


@pytest.mark.parametrize(
    ("targets", "waves", "sizes"),
    [
        (50, [1, "10%", "100%"], [1, 5, 44]),  # the documented example
        (20, [1, 5], [1, 5, 5, 5, 4]),  # the last size repeats
        (7, [], [7]),
        (3, [1, "10%", "100%"], [1, 1, 1]),  # 10% of 3 rounds down to 0, at least 1
        (10, [20], [10]),
        (10, ["30%"], [3, 3, 3, 1]),
        (0, [1, 2], []),
        (1, [5, "50%"], [1]),
    ],
)
def test_wave_sizes(targets: int, waves: list[int | str], sizes: list[int]) -> None:
    parsed = [parse_amount(w, "waves", minimum=1) for w in waves]
    assert wave_sizes(targets, parsed) == sizes
    assert wave_count(targets, parsed) == len(sizes)
    running = 0
    for i, size in enumerate(sizes):
        running += size
        assert wave_end(targets, parsed, i) == running


@given(
    targets=st.integers(min_value=0, max_value=3000),
    waves=st.lists(
        st.one_of(
            st.integers(min_value=1, max_value=400),
            st.integers(min_value=1, max_value=100).map(lambda p: f"{p}%"),
        ),
        max_size=4,
    ),
)
def test_waves_cover_every_target_exactly_once(targets: int, waves: list[int | str]) -> None:
    parsed = [parse_amount(w, "waves", minimum=1) for w in waves]
    sizes = wave_sizes(targets, parsed)
    assert sum(sizes) == targets
    assert all(s >= 1 for s in sizes)
    if sizes:
        assert wave_end(targets, parsed, len(sizes) - 1) == targets
        assert wave_end(targets, parsed, len(sizes) + 5) == targets


@pytest.mark.parametrize(
    ("raw", "minimum", "expected"),
    [
        (3, 0, 3),
        ("7", 0, 7),
        ("10%", 0, Percent(Fraction(10))),
        (" 2.5 % ", 0, Percent(Fraction(5, 2))),
        ("0%", 0, Percent(Fraction(0))),
    ],
)
def test_parse_amount(raw: int | str, minimum: int, expected: Amount) -> None:
    assert parse_amount(raw, "f", minimum=minimum) == expected


@pytest.mark.parametrize(
    ("raw", "minimum"),
    [(-1, 0), (0, 1), ("0%", 1), ("101%", 0), ("-5%", 0), ("ten", 0), (True, 0), (1.5, 0)],
)
def test_parse_amount_names_the_field_on_bad_input(raw: object, minimum: int) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_amount(raw, "waves[2]", minimum=minimum)
    assert info.value.field == "waves[2]"


def test_strategy_round_trips_through_json() -> None:
    strategy = Strategy.from_json(
        {
            "max_in_flight": 10,
            "max_errors": "10%",
            "waves": [1, "10%", "100%"],
            "pause_after_wave": True,
        }
    )
    assert strategy.max_errors == Percent(Fraction(10))
    assert Strategy.from_json(strategy.to_json()) == strategy
    assert strategy.to_json()["waves"] == [1, "10%", "100%"]


@pytest.mark.parametrize("raw", [{"max_in_flight": 0}, {"max_in_flight": "3"}, {"waves": "1"}])
def test_bad_strategies_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(InvalidSpec):
        Strategy.from_json(raw)


@pytest.mark.parametrize(
    ("limit", "in_flight", "allowance"),
    [(None, 500, UNBOUNDED), (10, 0, 10), (10, 7, 3), (10, 12, 0)],
)
def test_in_flight_allowance(limit: int | None, in_flight: int, allowance: int) -> None:
    assert in_flight_allowance(limit, in_flight) == allowance


@pytest.mark.parametrize(
    ("guard", "acting", "by_scope", "fleet", "refused"),
    [
        (None, 10_000, {"a": 10_000}, {}, None),
        (BlastRadius(max_servers=100), 100, {"a": 100}, {}, None),
        (BlastRadius(max_servers=100), 101, {"a": 101}, {}, "101 servers > max_servers 100"),
        (BlastRadius(max_percent=Fraction(20)), 20, {"a": 20}, {"a": 100}, None),
        (BlastRadius(max_percent=Fraction(20)), 21, {"a": 21}, {"a": 100}, "21/100"),
        (BlastRadius(max_percent=Fraction(20)), 25, {"a": 5, "b": 20}, {"a": 10, "b": 200}, "5/10"),
        (BlastRadius(max_percent=Fraction(50)), 5, {"a": 5}, {}, "fleet size"),
    ],
)
def test_blast_radius(
    guard: BlastRadius | None,
    acting: int,
    by_scope: dict[str, int],
    fleet: dict[str, int],
    refused: str | None,
) -> None:
    reason = blast_radius_refusal(guard, acting, by_scope, fleet)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None
        assert refused in reason


def test_blast_radius_round_trips() -> None:
    guard = BlastRadius.from_json({"max_servers": 500, "max_percent": "25%"})
    assert guard == BlastRadius(500, Fraction(25))
    assert BlastRadius.from_json(guard.to_json()) == guard
    assert BlastRadius.from_json({"max_percent": 12.5}).max_percent == Fraction(25, 2)


@pytest.mark.parametrize(
    ("guards", "expected"),
    [
        ((), None),
        ((None, None), None),
        ((BlastRadius(),), None),
        ((BlastRadius(5), None), BlastRadius(5)),
        ((BlastRadius(5), BlastRadius(3)), BlastRadius(3)),
        ((BlastRadius(5), BlastRadius(None, Fraction(20))), BlastRadius(5, Fraction(20))),
        (
            (BlastRadius(2, Fraction(50)), BlastRadius(9, Fraction(10)), BlastRadius(4)),
            BlastRadius(2, Fraction(10)),
        ),
    ],
)
def test_the_stricter_guard_takes_each_limit_from_the_strictest(
    guards: tuple[BlastRadius | None, ...], expected: BlastRadius | None
) -> None:
    assert stricter(*guards) == expected
