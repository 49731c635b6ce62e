"""The savings report: the hours servers stayed stopped because fleet stopped them, priced.

Input is the stop spans (`fleet.policies.store_tracking.StopSpan`): a server whose stop sub-job
succeeded, from the time fleet recorded the success until it was started again (by fleet: its own
record; by anyone else: the cloud's action history, or where a cloud keeps none the first read
showing the server running, which makes the span an upper bound). Each span is cut to the report's
window [start, end) (an open span ends at `now`), split by day in the report's time zone when
grouping by day, and multiplied by the configured hourly price of its endpoint and flavor.

What it assumes (and says in every report, `ASSUMPTIONS`): a stopped server is not billed for
compute and everything else (disks, addresses, licences) is billed as before; prices are the
configured list prices (no discounts, reservations or minimum billing units); a server fleet did
not stop (stopped by hand, or already stopped) saves nothing here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from fleet.policies.store_tracking import StopSpan
from jobs.types import JSONObject

GroupBy = Literal["policy", "endpoint", "flavor", "day"]
NO_POLICY = "(operations)"  # spans of operations no policy created
NO_FLAVOR = "(unknown flavor)"

ASSUMPTIONS = (
    "A stopped server is not billed for compute; disks, addresses and licences are still billed "
    "and are not counted.",
    "Prices are the configured hourly prices ([prices]); discounts, reservations and minimum "
    "billing units are not applied.",
    "Hours count from when fleet recorded the stop as done until the server was started again: "
    "by fleet (its own record), by anyone else (the cloud's action history), or where the cloud "
    "keeps none, the first read showing it running (those hours are an upper bound: bound_hours).",
    "Servers fleet did not stop (stopped by hand, or already stopped) are not counted.",
)


@dataclass(frozen=True)
class Prices:
    currency: str
    hourly: Mapping[str, Mapping[str, float]]

    def of(self, endpoint: str, flavor: str | None) -> float | None:
        table = self.hourly.get(endpoint, {})
        if flavor is not None and flavor in table:
            return table[flavor]
        return table.get("*")


@dataclass
class Row:
    key: str
    servers: set[tuple[str, str]] = field(default_factory=set)
    seconds: float = 0.0
    bound_seconds: float = 0.0
    unpriced_seconds: float = 0.0
    cost: float = 0.0
    still_stopped: set[tuple[str, str]] = field(default_factory=set)

    def add(self, span: StopSpan, seconds: float, price: float | None, still: bool) -> None:
        key = (span.endpoint, span.server_id)
        self.servers.add(key)
        self.seconds += seconds
        if span.bound:
            self.bound_seconds += seconds
        if price is None:
            self.unpriced_seconds += seconds
        else:
            self.cost += seconds / 3600 * price
        if still:
            self.still_stopped.add(key)

    def to_json(self) -> JSONObject:
        return {
            "key": self.key,
            "servers": len(self.servers),
            "hours": round(self.seconds / 3600, 6),
            "bound_hours": round(self.bound_seconds / 3600, 6),
            "unpriced_hours": round(self.unpriced_seconds / 3600, 6),
            "cost": round(self.cost, 2),
            "still_stopped": len(self.still_stopped),
        }


@dataclass(frozen=True)
class SavingsReport:
    start: datetime
    end: datetime
    group_by: GroupBy
    timezone: str
    currency: str
    rows: tuple[Row, ...]
    total: Row

    def to_json(self) -> JSONObject:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "group_by": self.group_by,
            "timezone": self.timezone,
            "currency": self.currency,
            "rows": [r.to_json() for r in self.rows],
            "total": self.total.to_json(),
            "assumptions": list(ASSUMPTIONS),
        }


def _days(start: datetime, end: datetime, tz: ZoneInfo) -> Iterator[tuple[date, float]]:
    """[start, end) cut at local midnights: (local day, seconds in it)."""
    at = start
    while at < end:
        local = at.astimezone(tz)
        next_day = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tz)
        cut = min(end, next_day)
        yield local.date(), (cut - at).total_seconds()
        at = cut


def _key(span: StopSpan, group_by: GroupBy) -> str:
    if group_by == "policy":
        return span.origin.policy_id or NO_POLICY
    if group_by == "endpoint":
        return span.endpoint
    return span.flavor or NO_FLAVOR


def report(
    spans: Sequence[StopSpan],
    start: datetime,
    end: datetime,
    now: datetime,
    prices: Prices,
    group_by: GroupBy = "policy",
    tz: str = "UTC",
) -> SavingsReport:
    """The report over [start, end) (an open span counts until `now`)."""
    zone = ZoneInfo(tz)
    rows: dict[str, Row] = defaultdict(lambda: Row(""))
    total = Row("total")
    for span in spans:
        ended = span.ended_at or now
        a, b = max(span.stopped_at, start), min(ended, end)
        if b <= a:
            continue
        price = prices.of(span.endpoint, span.flavor)
        still = span.ended_at is None or span.ended_at >= end
        pieces = (
            [(d.isoformat(), s) for d, s in _days(a, b, zone)]
            if group_by == "day"
            else [(_key(span, group_by), (b - a).total_seconds())]
        )
        for key, seconds in pieces:
            rows[key].key = key
            rows[key].add(span, seconds, price, still)
        total.add(span, (b - a).total_seconds(), price, still)
    ordered = tuple(rows[k] for k in sorted(rows))
    return SavingsReport(start, end, group_by, tz, prices.currency, ordered, total)
