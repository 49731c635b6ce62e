"""What the API and the CLI read of tracking: the savings report and the drift records."""

from __future__ import annotations

from datetime import datetime, timedelta

from fleet.policies.savings import GroupBy, Prices, SavingsReport, report
from fleet.policies.store_tracking import DriftRecord, TrackingStore
from jobs.clock import Clock
from jobs.errors import FieldError

DEFAULT_WINDOW = timedelta(days=7)
MAX_WINDOW = timedelta(days=366)


class Reports:
    def __init__(self, store: TrackingStore, prices: Prices, clock: Clock) -> None:
        self.store = store
        self.prices = prices
        self.clock = clock

    async def savings(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        group_by: GroupBy = "policy",
        tz: str = "UTC",
    ) -> SavingsReport:
        """Hours stopped and their price over [start, end) (default: the 7 days up to now)."""
        now = self.clock.now()
        end = end or now
        start = start or end - DEFAULT_WINDOW
        if start >= end:
            raise FieldError("from", "must be before to")
        if end - start > MAX_WINDOW:
            raise FieldError("from", "the window is at most 366 days")
        spans = await self.store.spans_between(start, end)
        return report(spans, start, end, now, self.prices, group_by, tz)

    async def drift(
        self,
        *,
        since: datetime | None = None,
        policy: str | None = None,
        endpoint: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> tuple[list[DriftRecord], int | None]:
        """A page of drift records, newest first, and the `before` of the next page."""
        found = await self.store.list_drift(
            since=since, policy=policy, endpoint=endpoint, before=before, limit=limit + 1
        )
        page = found[:limit]
        return page, (page[-1].id if len(found) > limit else None)
