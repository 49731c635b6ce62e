"""The drivers' `RequestGate`, backed by the engine's rate limiter: rate key = `endpoint:api_class`.

Every HTTP call a driver makes (actions, polls, lists) waits here for its budget, so the limits
hold for all traffic to an endpoint, whichever operation or loop makes the call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fleet.drivers.base import BudgetUnit, RateBudget
from jobs.ratelimit import Budget, RateLimiter, Unit


class LimiterGate:
    def __init__(self, endpoint: str, limiter: RateLimiter) -> None:
        self._endpoint = endpoint
        self._limiter = limiter

    def key(self, api_class: str) -> str:
        return f"{self._endpoint}:{api_class}"

    async def before(self, api_class: str, servers: int) -> None:
        await self._limiter.acquire(self.key(api_class), servers=max(1, servers), until_done=True)

    def after(self, api_class: str, servers: int) -> None:
        self._limiter.done(self.key(api_class), servers=max(1, servers))

    def throttled(self, api_class: str, retry_after: float | None) -> None:
        self._limiter.on_throttled(self.key(api_class), retry_after)


def to_budget(budget: RateBudget) -> Budget:
    unit = Unit.SERVERS if budget.unit is BudgetUnit.SERVERS else Unit.REQUESTS
    return Budget(limit=budget.limit, period=budget.period, unit=unit)


def configure_endpoint(
    limiter: RateLimiter,
    endpoint: str,
    defaults: Mapping[str, Sequence[RateBudget]],
    overrides: Mapping[str, Sequence[RateBudget]],
) -> dict[str, tuple[Budget, ...]]:
    """Budgets per rate key of one endpoint: the driver's documented defaults, then the config's.

    An override replaces the defaults of its API class entirely (an empty list: unlimited).
    """
    merged = {
        **{k: tuple(v) for k, v in defaults.items()},
        **{k: tuple(v) for k, v in overrides.items()},
    }
    out: dict[str, tuple[Budget, ...]] = {}
    for api_class, budgets in merged.items():
        key = f"{endpoint}:{api_class}"
        out[key] = tuple(to_budget(b) for b in budgets)
        limiter.configure(key, out[key])
    return out
