"""Whether each endpoint's credentials work, for `/readyz`, without calling the cloud on every probe.

A check asks the driver (`check_credentials`): a token-based endpoint (Keystone, Huawei IAM)
answers from its cached token while that is fresh, so it calls the cloud only when the token needs
fetching; an AK/SK endpoint makes one signed call. Each result is kept for `ttl` seconds, one check
per endpoint runs at a time, and a probe waits at most `wait` seconds for it: a check still running
then is reported as `checking` (the probe does not fail on it) and its result is kept for the next
probe. The reason of a failure names the error, never a secret (see docs/decisions.md, D24).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol, runtime_checkable

CredentialStateName = Literal["ok", "failed", "checking", "unchecked"]

TTL_SECONDS = 30.0
WAIT_SECONDS = 5.0


@runtime_checkable
class CredentialCheck(Protocol):
    async def check_credentials(self) -> None:
        """Return when the endpoint's credentials work; raise otherwise."""
        ...


@dataclass(frozen=True)
class CredentialState:
    state: CredentialStateName
    reason: str | None = None
    checked_at: datetime | None = None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class CredentialChecks:
    def __init__(
        self,
        drivers: Mapping[str, object],
        *,
        ttl: float = TTL_SECONDS,
        wait: float = WAIT_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._drivers = drivers
        self._ttl = ttl
        self._wait = wait
        self._monotonic = monotonic
        self._results: dict[str, tuple[float, CredentialState]] = {}
        self._running: dict[str, asyncio.Task[CredentialState]] = {}

    async def states(self) -> dict[str, CredentialState]:
        """Every endpoint's state, checked concurrently where the kept result is too old."""
        names = sorted(self._drivers)
        found = await asyncio.gather(*(self._state(name) for name in names))
        return dict(zip(names, found, strict=True))

    async def _state(self, name: str) -> CredentialState:
        driver = self._drivers[name]
        if not isinstance(driver, CredentialCheck):
            return CredentialState("unchecked")
        kept = self._results.get(name)
        if kept is not None and self._monotonic() - kept[0] < self._ttl:
            return kept[1]
        task = self._running.get(name)
        if task is None:
            task = asyncio.create_task(self._check(name, driver), name=f"credentials:{name}")
            self._running[name] = task
        try:
            return await asyncio.wait_for(asyncio.shield(task), self._wait)
        except TimeoutError:
            return CredentialState("checking", f"no answer within {self._wait:g} s yet")

    async def _check(self, name: str, driver: CredentialCheck) -> CredentialState:
        try:
            await driver.check_credentials()
            state = CredentialState("ok", None, datetime.now(UTC))
        except Exception as exc:  # any failure is the answer: the reason is what /readyz shows
            state = CredentialState("failed", _reason(exc), datetime.now(UTC))
        finally:
            self._running.pop(name, None)
        self._results[name] = (self._monotonic(), state)
        return state

    async def close(self) -> None:
        """Cancel the checks still running (the service is stopping)."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
