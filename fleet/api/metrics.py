"""`GET /metrics`: a snapshot of fleet's figures, exposed with prometheus_client.

Each scrape reads the figures (the database's asynchronously, then this process's limiter) into
metric families, and a one-off collector hands them to prometheus_client's encoder. The format
follows the scrape's `Accept` header (prometheus_client's `choose_encoder`): OpenMetrics 1.0 when
`application/openmetrics-text` is accepted, else the Prometheus text format 0.0.4.

Two sources:
- the database, for what every replica shares: operations by (derived) state, sub-jobs by state,
  cloud calls answered by endpoint, rate key, purpose and outcome (a counter: a recorded answer
  is never removed), and calls still waiting for their answer (a gauge);
- this process's limiter, for what is per replica: budgets, units used in the current window,
  queued callers, waits and throttling answers per rate key (counters since the process started).

Counters only ever go up: whatever can go down (calls in flight, queued callers) is a gauge.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from fleet.service import Fleet
from jobs.records import CallTotal

CALL_LABELS = ["endpoint", "rate_key", "purpose"]


class _Snapshot(Collector):
    """Families read before the scrape is encoded (prometheus_client collects synchronously)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _cloud_calls(totals: Iterable[CallTotal]) -> list[Metric]:
    answered = CounterMetricFamily(
        "fleet_cloud_calls",
        "Cloud calls answered, as the engine recorded them, by endpoint, rate key, purpose and "
        "outcome.",
        labels=[*CALL_LABELS, "outcome"],
    )
    waiting = GaugeMetricFamily(
        "fleet_cloud_calls_in_flight",
        "Cloud calls sent (or about to be) whose answer is not recorded yet.",
        labels=CALL_LABELS,
    )
    for t in sorted(totals, key=lambda t: (t.rate_key, t.purpose, str(t.outcome))):
        labels = [t.rate_key.split(":", 1)[0], t.rate_key, t.purpose]
        if t.outcome is None:
            waiting.add_metric(labels, t.count)
        else:
            answered.add_metric([*labels, t.outcome], t.count)
    return [answered, waiting]


def _limiter(fleet: Fleet) -> list[Metric]:
    keys: list[str] = fleet.limiter.keys()
    states = [fleet.limiter.state(k) for k in keys]
    budget = GaugeMetricFamily(
        "fleet_limiter_budget_units",
        "Configured budget: units allowed per period.",
        labels=["rate_key", "unit", "period"],
    )
    used = GaugeMetricFamily(
        "fleet_limiter_used_units",
        "Units sent in the current window of the key's longest budget, per unit.",
        labels=["rate_key", "unit"],
    )
    queued = GaugeMetricFamily(
        "fleet_limiter_queued", "Callers waiting for budget.", labels=["rate_key"]
    )
    waits = CounterMetricFamily(
        "fleet_limiter_waits", "Calls that had to wait for budget.", labels=["rate_key"]
    )
    throttled = CounterMetricFamily(
        "fleet_throttled",
        "Throttling answers from the cloud, per rate key (this process).",
        labels=["rate_key"],
    )
    for st in states:
        for b in st.budgets:
            budget.add_metric([st.key, b.unit.value, f"{b.period:g}"], b.limit)
        for unit, n in st.used.items():
            used.add_metric([st.key, unit.value], n)
        queued.add_metric([st.key], st.queued)
        waits.add_metric([st.key], st.waits)
        throttled.add_metric([st.key], st.throttled)
    return [budget, used, queued, waits, throttled]


async def snapshot(fleet: Fleet) -> list[Metric]:
    """Every family of a scrape, read now."""
    up = GaugeMetricFamily("fleet_up", "The service answers.", value=1)
    ops = GaugeMetricFamily("fleet_operations", "Operations by state.", labels=["state"])
    for state, n in (await fleet.store.operation_state_totals()).items():
        ops.add_metric([state.value], n)
    subs = GaugeMetricFamily(
        "fleet_subjobs",
        "Sub-jobs (one per server and operation; dry runs left out) by state.",
        labels=["state"],
    )
    for sub_state, n in (await fleet.store.subjob_state_totals()).items():
        subs.add_metric([sub_state.value], n)
    calls = _cloud_calls(await fleet.store.cloud_call_totals())
    return [up, ops, subs, *calls, *_limiter(fleet)]


async def render(fleet: Fleet, accept: str | None) -> tuple[bytes, str]:
    """The scrape's body and its Content-Type, in the format `accept` asks for."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(await snapshot(fleet)))
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type
