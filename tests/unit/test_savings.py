"""The savings report's arithmetic: spans cut to the window, split by local day, priced."""

from __future__ import annotations

from datetime import UTC, datetime

from fleet.policies.savings import NO_POLICY, Prices, report
from fleet.policies.store_tracking import Origin, StopSpan

PRICES = Prices("EUR", {"ecs": {"s6.large.2": 0.5, "*": 0.1}})


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC)


def span(
    server: str,
    start: datetime,
    end: datetime | None,
    *,
    flavor: str | None = "s6.large.2",
    policy: str | None = "nightly",
    source: str | None = "fleet",
    endpoint: str = "ecs",
) -> StopSpan:
    return StopSpan(
        1, endpoint, server, flavor, Origin("op", policy, 1), start, end,
        None if end is None else source, None, None,
    )  # fmt: skip


def test_spans_are_cut_to_the_window_and_an_open_one_counts_until_now() -> None:
    spans = [
        span("a", utc(1, 18), utc(2, 6)),  # 12 h, 6 of them before the window
        span("b", utc(2, 0), None),  # still stopped: until now (10:30)
    ]
    got = report(spans, utc(2, 0), utc(3, 0), utc(2, 10, 30), PRICES)
    (row,) = got.rows
    assert row.key == "nightly" and len(row.servers) == 2
    assert row.seconds == (6 + 10.5) * 3600
    assert round(row.cost, 6) == round(16.5 * 0.5, 6)
    assert got.total.to_json()["still_stopped"] == 1


def test_by_day_splits_at_local_midnight() -> None:
    # 20:00 to 08:00 in Berlin (UTC+2 in June): 4 h on the first day, 8 h on the second
    got = report(
        [span("a", utc(1, 18), utc(2, 6))], utc(1, 0), utc(3, 0), utc(3, 0), PRICES, "day",
        "Europe/Berlin",
    )  # fmt: skip
    assert [(r.key, r.seconds / 3600) for r in got.rows] == [("2026-06-01", 4), ("2026-06-02", 8)]
    assert got.total.seconds / 3600 == 12


def test_prices_by_flavor_with_a_default_and_unpriced_endpoints() -> None:
    spans = [
        span("a", utc(1, 0), utc(1, 10), flavor="c6.xlarge.2"),  # the endpoint's "*"
        span("b", utc(1, 0), utc(1, 10), endpoint="nova", policy=None),  # no price at all
        span("c", utc(1, 0), utc(1, 10), source="status_read"),  # an upper bound
    ]
    got = report(spans, utc(1, 0), utc(2, 0), utc(2, 0), PRICES, "policy")
    rows = {r.key: r.to_json() for r in got.rows}
    assert rows[NO_POLICY] == {
        "key": NO_POLICY, "servers": 1, "hours": 10.0, "bound_hours": 0.0,
        "unpriced_hours": 10.0, "cost": 0.0, "still_stopped": 0,
    }  # fmt: skip
    assert rows["nightly"]["cost"] == 10 * 0.1 + 10 * 0.5
    assert rows["nightly"]["bound_hours"] == 10.0
    assert got.to_json()["currency"] == "EUR" and got.to_json()["assumptions"]
