"""Per-API rate limits as the cloud would enforce them: sliding windows measured at receive time.

A sliding window is the strictest reading of "N requests per minute": a client that stays within
it in every window of `period` seconds is never refused, one that bursts at a window edge is.
Windows run on real (monotonic) time, not simulated time: limits are about a client's request rate.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limit:
    limit: int
    period: float
    unit: str = "requests"  # "requests" or "servers"

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period <= 0:
            raise ValueError("limit must be >= 1 and period > 0")
        if self.unit not in ("requests", "servers"):
            raise ValueError("unit must be 'requests' or 'servers'")


# Documented budgets: BMS "Table 2 BMS API constraints" (seed 000) and ECS "A maximum of 1,000 ECSs
# can be started [stopped/restarted] in one minute" (seed 001 §5.3). Everything else: unlimited.
DEFAULT_LIMITS: dict[str, Limit] = {
    "huawei-ecs:action": Limit(1000, 60.0, "servers"),
    "huawei-bms:action": Limit(50, 60.0),
    "huawei-bms:create": Limit(50, 60.0),  # "Creating a BMS: 50 requests per minute"
    "huawei-bms:jobs": Limit(2000, 60.0),
    "huawei-bms:detail": Limit(500, 60.0),
    "huawei-bms:show": Limit(1000, 60.0),
    "huawei-bms:flavors": Limit(500, 60.0),
    "huawei-bms:limits": Limit(500, 60.0),
    "huawei-bms:versions": Limit(2000, 60.0),
}


@dataclass
class KeyStats:
    calls: int = 0
    throttled: int = 0
    units: int = 0
    max_in_window: int = 0


@dataclass
class RateLimits:
    limits: dict[str, Limit] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    stats: dict[str, KeyStats] = field(default_factory=dict)
    _log: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)

    def set(self, key: str, limit: Limit | None) -> None:
        if limit is None:
            self.limits.pop(key, None)
        else:
            self.limits[key] = limit
        self._log.pop(key, None)

    def admit(self, key: str, requests: int = 1, servers: int = 0) -> float | None:
        """Count a call; None if admitted, else the seconds until it would fit (a retry-after)."""
        stats = self.stats.setdefault(key, KeyStats())
        stats.calls += 1
        limit = self.limits.get(key)
        if limit is None:
            stats.units += servers if servers else requests
            return None
        units = servers if limit.unit == "servers" else requests
        now = time.monotonic()
        log = self._log.setdefault(key, deque())
        while log and log[0][0] <= now - limit.period:
            log.popleft()
        used = sum(u for _, u in log)
        if used + units > limit.limit:
            stats.throttled += 1
            return max(0.001, log[0][0] + limit.period - now) if log else limit.period
        log.append((now, units))
        stats.units += units
        stats.max_in_window = max(stats.max_in_window, used + units)
        return None

    def snapshot(self) -> dict[str, dict[str, object]]:
        keys = sorted(set(self.stats) | set(self.limits))
        out: dict[str, dict[str, object]] = {}
        for key in keys:
            s = self.stats.get(key, KeyStats())
            lim = self.limits.get(key)
            out[key] = {
                "calls": s.calls,
                "throttled": s.throttled,
                "units": s.units,
                "max_in_window": s.max_in_window,
                "limit": None
                if lim is None
                else {"limit": lim.limit, "period": lim.period, "unit": lim.unit},
            }
        return out
