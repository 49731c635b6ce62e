"""`GET /metrics`: a snapshot of fleet's figures, exposed with prometheus_client.

Each scrape reads the figures (the database's asynchronously, then this process's) into metric
families, and a one-off collector hands them to prometheus_client's encoder. The format follows
the scrape's `Accept` header (prometheus_client's `choose_encoder`): OpenMetrics 1.0 when
`application/openmetrics-text` is accepted, else the Prometheus text format 0.0.4.

Two kinds of families, so that a sum over replicas counts everything once:
- per replica, labelled `worker` (this process's stable worker name, `engine.worker`): what this
  process itself does since it started: its cloud calls answered (a counter) and still waiting
  for their answer (a gauge), by endpoint, rate key, purpose (and outcome); its limiter's budgets,
  units used in the current window, queued callers, waits and throttling answers per rate key;
  whether it is the one exporting the database-wide families (`fleet_leader`);
- database-wide, exported by the leader only (the replica that leads the policy scheduler, as
  `/readyz` says `leader: yes`; with the policies disabled, the holder of an advisory lock of its
  own on PostgreSQL; on SQLite the one process): operations by (derived) state and sub-jobs by
  state. The other replicas leave them out.

Counters only ever go up: whatever can go down (calls in flight, queued callers) is a gauge.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from fleet.service import Fleet

CALL_LABELS = ["worker", "endpoint", "rate_key", "purpose"]


class _Snapshot(Collector):
    """Families read before the scrape is encoded (prometheus_client collects synchronously)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _cloud_calls(fleet: Fleet, worker: str) -> list[Metric]:
    answered = CounterMetricFamily(
        "fleet_cloud_calls",
        "Cloud calls this replica sent and recorded the answer of, since it started, by endpoint, "
        "rate key, purpose and outcome.",
        labels=[*CALL_LABELS, "outcome"],
    )
    waiting = GaugeMetricFamily(
        "fleet_cloud_calls_in_flight",
        "Cloud calls this replica sent (or is about to) whose answer is not recorded yet.",
        labels=CALL_LABELS,
    )
    tally = fleet.runtime.dispatcher.calls
    for (key, purpose, outcome), n in sorted(tally.answered.items()):
        answered.add_metric([worker, key.split(":", 1)[0], key, purpose, outcome], n)
    for (key, purpose), n in sorted(tally.in_flight().items()):
        waiting.add_metric([worker, key.split(":", 1)[0], key, purpose], n)
    return [answered, waiting]


def _limiter(fleet: Fleet, worker: str) -> list[Metric]:
    keys: list[str] = fleet.limiter.keys()
    states = [fleet.limiter.state(k) for k in keys]
    budget = GaugeMetricFamily(
        "fleet_limiter_budget_units",
        "Configured budget: units allowed per period.",
        labels=["worker", "rate_key", "unit", "period"],
    )
    used = GaugeMetricFamily(
        "fleet_limiter_used_units",
        "Units sent in the current window of the key's longest budget, per unit.",
        labels=["worker", "rate_key", "unit"],
    )
    queued = GaugeMetricFamily(
        "fleet_limiter_queued", "Callers waiting for budget.", labels=["worker", "rate_key"]
    )
    waits = CounterMetricFamily(
        "fleet_limiter_waits", "Calls that had to wait for budget.", labels=["worker", "rate_key"]
    )
    throttled = CounterMetricFamily(
        "fleet_throttled",
        "Throttling answers from the cloud, per rate key (this process).",
        labels=["worker", "rate_key"],
    )
    for st in states:
        for b in st.budgets:
            budget.add_metric([worker, st.key, b.unit.value, f"{b.period:g}"], b.limit)
        for unit, n in st.used.items():
            used.add_metric([worker, st.key, unit.value], n)
        queued.add_metric([worker, st.key], st.queued)
        waits.add_metric([worker, st.key], st.waits)
        throttled.add_metric([worker, st.key], st.throttled)
    return [budget, used, queued, waits, throttled]


async def leads(fleet: Fleet) -> bool:
    """Whether this replica exports the database-wide families: it leads the policy scheduler,
    or, with the policies disabled, it holds (or now takes) the totals' own lock."""
    if fleet.policies is not None:
        return fleet.policies.leading
    return fleet.totals_leader is not None and await fleet.totals_leader.acquire()


async def _database(fleet: Fleet) -> list[Metric]:
    ops = GaugeMetricFamily(
        "fleet_operations",
        "Operations by state, over the whole database (exported by the leader only).",
        labels=["state"],
    )
    for state, n in (await fleet.store.operation_state_totals()).items():
        ops.add_metric([state.value], n)
    subs = GaugeMetricFamily(
        "fleet_subjobs",
        "Sub-jobs (one per server and operation; dry runs left out) by state, over the whole "
        "database (exported by the leader only).",
        labels=["state"],
    )
    for sub_state, n in (await fleet.store.subjob_state_totals()).items():
        subs.add_metric([sub_state.value], n)
    return [ops, subs]


async def snapshot(fleet: Fleet) -> list[Metric]:
    """Every family of a scrape, read now."""
    worker = fleet.runtime.config.worker
    leader = await leads(fleet)
    up = GaugeMetricFamily("fleet_up", "The service answers.", labels=["worker"])
    up.add_metric([worker], 1)
    lead = GaugeMetricFamily(
        "fleet_leader",
        "1 if this replica exports the database-wide families (fleet_operations, fleet_subjobs).",
        labels=["worker"],
    )
    lead.add_metric([worker], 1 if leader else 0)
    totals = await _database(fleet) if leader else []
    return [up, lead, *totals, *_cloud_calls(fleet, worker), *_limiter(fleet, worker)]


async def render(fleet: Fleet, accept: str | None) -> tuple[bytes, str]:
    """The scrape's body and its Content-Type, in the format `accept` asks for."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(await snapshot(fleet)))
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type
