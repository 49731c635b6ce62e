"""Prometheus text exposition (format 0.0.4), written by hand: a handful of families, no client lib.

Two sources:
- the database, for what every replica shares: operations by (derived) state, sub-jobs by state,
  and cloud calls by endpoint, rate key and outcome. The aggregates are three GROUP BY queries
  over the engine's tables (read-only; `jobs.store` has no aggregate API yet);
- this process's limiter, for what is per replica: budgets, units used in the current window,
  queued callers, waits and throttling answers per rate key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from fleet.service import Fleet
from jobs.states import ACTIVE, OperationFlags, OperationState, State, derive_operation_state
from jobs.store.models import CLOUD_CALLS, OPERATIONS, SUBJOBS

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


async def _operation_states(fleet: Fleet) -> dict[OperationState, int]:
    """Operations by derived state, from flags and two EXISTS per operation."""
    o, s = OPERATIONS.c, SUBJOBS.c

    def has(states: Iterable[State]) -> sa.ColumnElement[bool]:
        values = [st.value for st in states]
        return sa.exists().where(s.operation_id == o.id, s.state.in_(values))

    flags = (
        o.planned_at.is_not(None).label("planned"),
        o.refused_reason.is_not(None).label("refused"),
        o.dry_run,
        o.paused,
        o.cancel_requested,
        o.halted_reason.is_not(None).label("halted"),
        has(ACTIVE).label("active"),
        has([State.FAILED]).label("failed"),
    )
    stmt = sa.select(*flags, sa.func.count()).group_by(*flags)
    out = dict.fromkeys(OperationState, 0)
    async with fleet.store.db.read() as conn:
        for row in (await conn.execute(stmt)).all():
            *bits, active, failed, count = row
            state = derive_operation_state(
                {State.PENDING: int(bool(active)), State.FAILED: int(bool(failed))},
                OperationFlags(*(bool(b) for b in bits)),
            )
            out[state] += int(count)
    return out


async def _subjob_states(fleet: Fleet) -> dict[State, int]:
    real = sa.select(OPERATIONS.c.id).where(OPERATIONS.c.dry_run.is_(False))
    stmt = (
        sa.select(SUBJOBS.c.state, sa.func.count())
        .where(SUBJOBS.c.operation_id.in_(real.scalar_subquery()))
        .group_by(SUBJOBS.c.state)
    )
    out = dict.fromkeys(State, 0)
    async with fleet.store.db.read() as conn:
        for state, count in (await conn.execute(stmt)).all():
            out[State(state)] = int(count)
    return out


async def _cloud_calls(fleet: Fleet) -> list[tuple[Labels, float]]:
    c = CLOUD_CALLS.c
    stmt = sa.select(c.rate_key, c.purpose, c.outcome, sa.func.count()).group_by(
        c.rate_key, c.purpose, c.outcome
    )
    async with fleet.store.db.read() as conn:
        rows = (await conn.execute(stmt)).all()
    return [
        (
            {
                "endpoint": str(key).split(":", 1)[0],
                "rate_key": str(key),
                "purpose": str(purpose),
                "outcome": str(outcome or "in_flight"),
            },
            float(count),
        )
        for key, purpose, outcome, count in sorted(rows, key=lambda r: tuple(map(str, r[:3])))
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
    ops = await _operation_states(fleet)
    out.family(
        "fleet_operations",
        "gauge",
        "Operations by state.",
        [({"state": s.value}, n) for s, n in ops.items()],
    )
    subs = await _subjob_states(fleet)
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
        await _cloud_calls(fleet),
    )
    _limiter(fleet, out)
    return out.text()
