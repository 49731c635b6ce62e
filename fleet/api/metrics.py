"""Prometheus text exposition (format 0.0.4), written by hand: a handful of families, no client lib.

Two sources:
- the database, for what every replica shares: operations by (derived) state, sub-jobs by state,
  and cloud calls by endpoint, rate key and outcome (the store's totals, `jobs.store.totals`);
- this process's limiter, for what is per replica: budgets, units used in the current window,
  queued callers, waits and throttling answers per rate key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fleet.service import Fleet
from jobs.records import CallTotal

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Labels = Mapping[str, str]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


class Exposition:
    """Families in order, each with its HELP and TYPE lines once."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[Labels, float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            number = int(value) if float(value).is_integer() else value
            self.lines.append(f"{name}{_labels(labels)} {number}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _cloud_calls(totals: Iterable[CallTotal]) -> list[tuple[Labels, float]]:
    return [
        (
            {
                "endpoint": t.rate_key.split(":", 1)[0],
                "rate_key": t.rate_key,
                "purpose": t.purpose,
                "outcome": t.outcome or "in_flight",
            },
            float(t.count),
        )
        for t in sorted(totals, key=lambda t: (t.rate_key, t.purpose, str(t.outcome)))
    ]


def _limiter(fleet: Fleet, out: Exposition) -> None:
    keys: list[str] = fleet.limiter.keys()
    states = [fleet.limiter.state(k) for k in keys]

    def each(pick: str) -> list[tuple[Labels, float]]:
        return [({"rate_key": st.key}, float(getattr(st, pick))) for st in states]

    out.family(
        "fleet_limiter_budget_units",
        "gauge",
        "Configured budget: units allowed per period.",
        [
            ({"rate_key": st.key, "unit": b.unit.value, "period": f"{b.period:g}"}, b.limit)
            for st in states
            for b in st.budgets
        ],
    )
    out.family(
        "fleet_limiter_used_units",
        "gauge",
        "Units sent in the current window of the key's longest budget, per unit.",
        [({"rate_key": st.key, "unit": u.value}, n) for st in states for u, n in st.used.items()],
    )
    out.family("fleet_limiter_queued", "gauge", "Callers waiting for budget.", each("queued"))
    out.family(
        "fleet_limiter_waits_total", "counter", "Calls that had to wait for budget.", each("waits")
    )
    out.family(
        "fleet_throttled_total",
        "counter",
        "Throttling answers from the cloud, per rate key (this process).",
        each("throttled"),
    )


async def render(fleet: Fleet) -> str:
    out = Exposition()
    out.family("fleet_up", "gauge", "The service answers.", [({}, 1)])
    ops = await fleet.store.operation_state_totals()
    out.family(
        "fleet_operations",
        "gauge",
        "Operations by state.",
        [({"state": s.value}, n) for s, n in ops.items()],
    )
    subs = await fleet.store.subjob_state_totals()
    out.family(
        "fleet_subjobs",
        "gauge",
        "Sub-jobs (one per server and operation; dry runs left out) by state.",
        [({"state": s.value}, n) for s, n in subs.items()],
    )
    out.family(
        "fleet_cloud_calls_total",
        "counter",
        "Cloud calls the engine recorded, by endpoint, rate key, purpose and outcome.",
        _cloud_calls(await fleet.store.cloud_call_totals()),
    )
    _limiter(fleet, out)
    return out.text()
