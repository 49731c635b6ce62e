"""Plan arithmetic: what planning accumulates while it streams targets, and the ETA.

The builder keeps counters only (plus a digest of each target id, to drop duplicates: `SeenIds`),
never the items, so planning 1,000,000 targets stays small. The ETA is computed from the budgets, not guessed:

- each step is counted on the rate key it is sent on (`StepProfile.rate_key`: an ECS resize
  sends its stop and start on `{endpoint}:action` and the resize on `{endpoint}:resize`), for the
  targets it applies to: a step `only_if_running` only for targets that were running when
  planned (`was_running`; the builder counts them per rate key and batch key), and a
  compensation step (`on_failure_only`) for none, as it is never on the way of a success;
- sending N units under a budget of L units per P seconds takes ``P * (ceil(N / L) - 1)`` seconds
  (the first L leave at once, the next L one period later, ...), for each budget of the key, the
  slowest budget deciding; requests count calls, servers count servers per step;
- a server then needs its steps' cloud time on its endpoint, observed on the poll grid
  (``ceil(seconds / poll_interval) * poll_interval`` per step); a key's cycle is that time from
  the first step sent on the key to the last step; a wave ends when the key whose last send plus
  cycle is latest is done;
- ``max_in_flight`` M bounds concurrency: a wave of W servers needs at least ``ceil(W / M)``
  cycles, and calls carry at most ``min(max_batch, M, W)`` servers;
- waves run one after the other, so their times add up.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from jobs.ports import ActionProfile, FleetSize, NewSubJob, PlanItem, StepProfile
from jobs.ratelimit import Budget, Unit
from jobs.records import PlanSummary, RateKeyPlan, SubJobRecord
from jobs.seen import SeenIds
from jobs.strategy import BlastRadius, Strategy, blast_radius_refusal, wave_count, wave_sizes

SKIPPED_SEQ_BASE = -1_000_000_000  # skipped rows sort first, in plan order, below every target
MAX_WAVES_LISTED = 100
# The planner records the status a target was listed in under this payload key; steps that are
# `only_if_running` apply to the targets whose status was RUNNING_STATUS.
STATUS_FIELD = "status"
RUNNING_STATUS = "running"
# ... and the scope (endpoint) a target belongs to under this one, read back when a planning is
# taken up from kept rows (D101).
SCOPE_FIELD = "endpoint"


def was_running(target: PlanItem | SubJobRecord | NewSubJob) -> bool:
    """Whether the target (a plan item, or the sub-job planned from it) was running when planned:
    steps `only_if_running` apply to it."""
    return target.payload.get(STATUS_FIELD) == RUNNING_STATUS


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


NOTHING_MATCHED = "no server matched the selector"


class PlanBuilder:
    """Accumulates one operation's plan while the planner's items stream through."""

    def __init__(self) -> None:
        self.acting = 0
        self.skipped = 0
        self.skipped_by_reason: Counter[str] = Counter()
        self.per_batch: Counter[tuple[str, str]] = Counter()  # (rate_key, batch_key) -> servers
        self.running: Counter[tuple[str, str]] = Counter()  # ... -> of them, those running
        self.acting_by_scope: Counter[str] = Counter()
        self.fleet_by_scope: dict[str, int] = {}
        self._seen = SeenIds()
        self._next_seq = 0
        self._next_skipped = SKIPPED_SEQ_BASE

    def add(self, item: PlanItem) -> NewSubJob | None:
        """The row to insert for `item`, or None for a duplicate target (kept once)."""
        if not self._seen.add(item.target_id):
            return None
        if item.skip_reason is not None:
            seq = self._next_skipped
            self._next_skipped += 1
            self.skipped += 1
            self.skipped_by_reason[item.skip_reason] += 1
        else:
            seq = self._next_seq
            self._next_seq += 1
            self.acting += 1
            self.per_batch[(item.rate_key, item.batch_key)] += 1
            if was_running(item):
                self.running[(item.rate_key, item.batch_key)] += 1
            self.acting_by_scope[item.scope] += 1
        return NewSubJob(
            seq=seq,
            target_id=item.target_id,
            rate_key=item.rate_key,
            batch_key=item.batch_key,
            payload=item.payload,
            skip_reason=item.skip_reason,
        )

    def seed(self, rows: Iterable[NewSubJob]) -> None:
        """Take up the rows an earlier attempt wrote for an operation open to dispatch (D101):
        their targets are not planned again, and new rows are numbered after them."""
        for row in rows:
            self._seen.add(row.target_id)
            if row.skip_reason is not None:
                self.skipped += 1
                self.skipped_by_reason[row.skip_reason] += 1
                self._next_skipped = max(self._next_skipped, row.seq + 1)
                continue
            self.acting += 1
            self._next_seq = max(self._next_seq, row.seq + 1)
            self.per_batch[(row.rate_key, row.batch_key)] += 1
            if was_running(row):
                self.running[(row.rate_key, row.batch_key)] += 1
            self.acting_by_scope[str(row.payload.get(SCOPE_FIELD, ""))] += 1

    def fleet(self, size: FleetSize) -> None:
        self.fleet_by_scope[size.scope] = size.servers

    @property
    def scopes(self) -> tuple[Mapping[str, int], Mapping[str, int]]:
        """Servers acted on per scope, and each scope's fleet (for `jobs.approval`)."""
        return self.acting_by_scope, self.fleet_by_scope

    @property
    def rate_keys(self) -> tuple[str, ...]:
        return tuple(sorted({k for k, _ in self.per_batch}))

    def refusal(self, guard: BlastRadius | None) -> str | None:
        """Why the operation must not run: nothing matched (an operation that would do nothing
        does not say it succeeded), or the guard."""
        if not self.acting and not self.skipped:
            return NOTHING_MATCHED
        return blast_radius_refusal(guard, self.acting, self.acting_by_scope, self.fleet_by_scope)

    def summary(self, eta: EtaInputs, refused_reason: str | None = None) -> PlanSummary:
        waves = wave_sizes(self.acting, eta.strategy.waves) if self.acting else []
        keys, total = estimate(self.per_batch, self.acting, waves, eta, self.running)
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


def _grid(seconds: float, poll_interval: float) -> float:
    """A step's cloud time as the poll grid observes it."""
    if seconds > 0 and poll_interval > 0:
        return poll_interval * math.ceil(seconds / poll_interval)
    return seconds


@dataclass
class _Load:
    """What one wave sends on one rate key."""

    calls: int = 0
    units: int = 0  # servers over every step sent on the key
    cycle: float = 0.0  # cloud time from the key's first step to the end of the action


def _steps(
    profile: ActionProfile, key: str, servers: int, running: int, poll_interval: float
) -> list[tuple[StepProfile, str, int, float]]:
    """The steps that send calls for `servers` targets of rate key `key`, `running` of which were
    running: (step, the key it is sent on, servers it carries, cloud time from it to the end).
    A compensation step is never counted, a step `only_if_running` only for running targets."""
    out: list[tuple[StepProfile, str, int, float]] = []
    tail = 0.0
    for step in reversed(profile.steps):
        if step.on_failure_only:
            continue
        count = min(running, servers) if step.only_if_running else servers
        if count <= 0:
            continue
        tail += _grid(step.seconds, poll_interval)
        out.append((step, step.rate_key or key, count, tail))
    out.reverse()
    return out


def _wave_load(
    per_batch: Mapping[tuple[str, str], int],
    running: Mapping[tuple[str, str], int],
    share: float,
    cap: int,
    eta: EtaInputs,
) -> dict[str, _Load]:
    """Calls, server units and cycle per rate key for a wave holding `share` of the targets."""
    out: dict[str, _Load] = {}
    for (key, bk), count in per_batch.items():
        servers = math.ceil(count * share)
        up = math.ceil(running.get((key, bk), 0) * share)
        for step, sent_on, n, tail in _steps(
            eta.key_profile(key), key, servers, up, eta.poll_interval
        ):
            load = out.setdefault(sent_on, _Load())
            load.calls += math.ceil(n / max(1, min(step.max_batch, cap)))
            load.units += n
            load.cycle = max(load.cycle, tail)
    return out


def _cycle(profile: ActionProfile, poll_interval: float) -> float:
    """Cloud time per server over every step (but a compensation), as the poll grid observes it."""
    return sum(_grid(s.seconds, poll_interval) for s in profile.steps if not s.on_failure_only)


def _longest(
    per_batch: Mapping[tuple[str, str], int], running: Mapping[tuple[str, str], int], eta: EtaInputs
) -> float:
    """The longest cloud time of one target over its steps."""
    paths = [
        steps[0][3]
        for (key, bk), count in per_batch.items()
        if (
            steps := _steps(
                eta.key_profile(key), key, count, running.get((key, bk), 0), eta.poll_interval
            )
        )
    ]
    return max(paths, default=_cycle(eta.profile, eta.poll_interval))


def estimate(
    per_batch: Mapping[tuple[str, str], int],
    acting: int,
    waves: Sequence[int],
    eta: EtaInputs,
    running: Mapping[tuple[str, str], int] | None = None,
) -> tuple[tuple[RateKeyPlan, ...], float]:
    """Per-rate-key calls and send time, and the whole operation's ETA in seconds. `running`
    counts, per (rate key, batch key), the targets that were running (none when omitted)."""
    running = running or {}
    longest = _longest(per_batch, running, eta)
    mif = eta.strategy.max_in_flight
    totals: dict[str, list[int]] = {}
    cache: dict[int, tuple[float, dict[str, _Load]]] = {}
    seconds = 0.0
    for size in waves:
        if size not in cache:
            cap = min(size, mif) if mif else size
            per_key = _wave_load(per_batch, running, size / acting, cap, eta)
            # each key's last server is sent, then takes the cloud time left after it to settle
            done = max(
                (
                    send_seconds(load.calls, load.units, eta.budgets(k)) + load.cycle
                    for k, load in per_key.items()
                ),
                default=longest,
            )
            rounds = math.ceil(size / mif) if mif else 1
            cache[size] = (max(done, rounds * longest), per_key)
        wave_time, per_key = cache[size]
        seconds += wave_time
        for key, load in per_key.items():
            acc = totals.setdefault(key, [0, 0])
            acc[0] += load.calls
            acc[1] += load.units
    # servers acting through each key (the most of its steps carry), and its first step's calls
    servers: Counter[str] = Counter({k: 0 for k, _ in per_batch})
    batches: Counter[str] = Counter()
    for (key, bk), count in per_batch.items():
        most: dict[str, int] = {}
        for step, sent_on, n, _tail in _steps(
            eta.key_profile(key), key, count, running.get((key, bk), 0), eta.poll_interval
        ):
            if sent_on not in most:
                batches[sent_on] += math.ceil(n / max(1, step.max_batch))
            most[sent_on] = max(most.get(sent_on, 0), n)
        servers.update(most)
    keys = []
    for key in sorted(servers):
        calls, units = totals.get(key, [0, 0])
        budgets = eta.budgets(key)
        keys.append(
            RateKeyPlan(
                key,
                servers[key],
                batches[key],
                calls,
                tuple(describe(b) for b in budgets),
                round(send_seconds(calls, units, budgets), 3),
            )
        )
    return tuple(keys), seconds
