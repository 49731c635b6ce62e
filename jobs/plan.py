"""Plan arithmetic: what planning accumulates while it streams targets, and the ETA.

The builder keeps counters only (plus the set of target ids, to drop duplicates), never the items,
so planning 100,000 targets stays small. The ETA is computed from the budgets, not guessed:

- sending N units under a budget of L units per P seconds takes ``P * (ceil(N / L) - 1)`` seconds
  (the first L leave at once, the next L one period later, ...), for each budget of the key, the
  slowest budget deciding; requests count calls, servers count servers per step;
- a server then needs its steps' cloud time on its endpoint, observed on the poll grid
  (``ceil(seconds / poll_interval) * poll_interval`` per step); a wave ends when the key whose
  last send plus cycle is latest is done;
- ``max_in_flight`` M bounds concurrency: a wave of W servers needs at least ``ceil(W / M)``
  cycles, and calls carry at most ``min(max_batch, M, W)`` servers;
- waves run one after the other, so their times add up.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from jobs.ports import ActionProfile, FleetSize, NewSubJob, PlanItem
from jobs.ratelimit import Budget, Unit
from jobs.records import PlanSummary, RateKeyPlan
from jobs.strategy import BlastRadius, Strategy, blast_radius_refusal, wave_count, wave_sizes

SKIPPED_SEQ_BASE = -1_000_000_000  # skipped rows sort first, in plan order, below every target
MAX_WAVES_LISTED = 100


def send_seconds(calls: int, servers: int, budgets: Sequence[Budget]) -> float:
    """Seconds from the first to the last send of `calls` calls carrying `servers` servers."""
    worst = 0.0
    for budget in budgets:
        units = servers if budget.unit is Unit.SERVERS else calls
        if units > 0:
            worst = max(worst, budget.period * (math.ceil(units / budget.limit) - 1))
    return worst


def describe(budget: Budget) -> str:
    return f"{budget.limit} {budget.unit.value} / {budget.period:g}s"


@dataclass(frozen=True)
class EtaInputs:
    profile: ActionProfile
    strategy: Strategy
    poll_interval: float
    budgets: Callable[[str], Sequence[Budget]]
    profile_for: Callable[[str], ActionProfile] | None = None  # per rate key (batch sizes)

    def key_profile(self, key: str) -> ActionProfile:
        return self.profile if self.profile_for is None else self.profile_for(key)


class PlanBuilder:
    """Accumulates one operation's plan while the planner's items stream through."""

    def __init__(self) -> None:
        self.acting = 0
        self.skipped = 0
        self.skipped_by_reason: Counter[str] = Counter()
        self.per_batch: Counter[tuple[str, str]] = Counter()  # (rate_key, batch_key) -> servers
        self.acting_by_scope: Counter[str] = Counter()
        self.fleet_by_scope: dict[str, int] = {}
        self._seen: set[str] = set()

    def add(self, item: PlanItem) -> NewSubJob | None:
        """The row to insert for `item`, or None for a duplicate target (kept once)."""
        if item.target_id in self._seen:
            return None
        self._seen.add(item.target_id)
        if item.skip_reason is not None:
            seq = SKIPPED_SEQ_BASE + self.skipped
            self.skipped += 1
            self.skipped_by_reason[item.skip_reason] += 1
        else:
            seq = self.acting
            self.acting += 1
            self.per_batch[(item.rate_key, item.batch_key)] += 1
            self.acting_by_scope[item.scope] += 1
        return NewSubJob(
            seq=seq,
            target_id=item.target_id,
            rate_key=item.rate_key,
            batch_key=item.batch_key,
            payload=item.payload,
            skip_reason=item.skip_reason,
        )

    def fleet(self, size: FleetSize) -> None:
        self.fleet_by_scope[size.scope] = size.servers

    @property
    def rate_keys(self) -> tuple[str, ...]:
        return tuple(sorted({k for k, _ in self.per_batch}))

    def refusal(self, guard: BlastRadius | None) -> str | None:
        return blast_radius_refusal(guard, self.acting, self.acting_by_scope, self.fleet_by_scope)

    def summary(self, eta: EtaInputs, refused_reason: str | None = None) -> PlanSummary:
        waves = wave_sizes(self.acting, eta.strategy.waves) if self.acting else []
        keys, total = estimate(self.per_batch, self.acting, waves, eta)
        return PlanSummary(
            targets=self.acting,
            skipped=self.skipped,
            skipped_by_reason=dict(self.skipped_by_reason),
            rate_keys=keys,
            waves=tuple(waves[:MAX_WAVES_LISTED]),
            wave_count=wave_count(self.acting, eta.strategy.waves),
            eta_seconds=round(total, 3),
            acting_by_scope=dict(self.acting_by_scope),
            fleet_by_scope=dict(self.fleet_by_scope),
            refused_reason=refused_reason,
        )


def _cycle(profile: ActionProfile, poll_interval: float) -> float:
    """Cloud time per server over every step, as the poll grid observes it."""
    total = 0.0
    for step in profile.steps:
        if step.seconds > 0 and poll_interval > 0:
            total += poll_interval * math.ceil(step.seconds / poll_interval)
        else:
            total += step.seconds
    return total


def _wave_calls(
    per_batch: Mapping[tuple[str, str], int], share: float, cap: int, eta: EtaInputs
) -> dict[str, tuple[int, int]]:
    """(calls, server units) per rate key for a wave holding `share` of the targets."""
    out: dict[str, tuple[int, int]] = {}
    for (key, _bk), count in per_batch.items():
        profile = eta.key_profile(key)
        servers = math.ceil(count * share)
        calls = sum(math.ceil(servers / max(1, min(s.max_batch, cap))) for s in profile.steps)
        prev = out.get(key, (0, 0))
        out[key] = (prev[0] + calls, prev[1] + servers * len(profile.steps))
    return out


def estimate(
    per_batch: Mapping[tuple[str, str], int], acting: int, waves: Sequence[int], eta: EtaInputs
) -> tuple[tuple[RateKeyPlan, ...], float]:
    """Per-rate-key calls and send time, and the whole operation's ETA in seconds."""
    cycles = {k: _cycle(eta.key_profile(k), eta.poll_interval) for k in {k for k, _ in per_batch}}
    longest = max(cycles.values(), default=_cycle(eta.profile, eta.poll_interval))
    mif = eta.strategy.max_in_flight
    totals: dict[str, list[float]] = {}
    cache: dict[int, tuple[float, dict[str, tuple[int, int]]]] = {}
    seconds = 0.0
    for size in waves:
        if size not in cache:
            cap = min(size, mif) if mif else size
            per_key = _wave_calls(per_batch, size / acting, cap, eta)
            # each key's last server is sent, then takes its endpoint's cycle to settle
            done = max(
                (send_seconds(c, s, eta.budgets(k)) + cycles[k] for k, (c, s) in per_key.items()),
                default=longest,
            )
            rounds = math.ceil(size / mif) if mif else 1
            cache[size] = (max(done, rounds * longest), per_key)
        wave_time, per_key = cache[size]
        seconds += wave_time
        for key, (calls, units) in per_key.items():
            acc = totals.setdefault(key, [0, 0])
            acc[0] += calls
            acc[1] += units
    keys = []
    for key in sorted({k for k, _ in per_batch}):
        servers = sum(n for (k, _), n in per_batch.items() if k == key)
        batches = sum(
            math.ceil(n / max(1, eta.key_profile(key).step(0).max_batch))
            for (k, _), n in per_batch.items()
            if k == key
        )
        calls, units = (int(v) for v in totals.get(key, [0, 0]))
        budgets = eta.budgets(key)
        keys.append(
            RateKeyPlan(
                key,
                servers,
                batches,
                calls,
                tuple(describe(b) for b in budgets),
                round(send_seconds(calls, units, budgets), 3),
            )
        )
    return tuple(keys), seconds
