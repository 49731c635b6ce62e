"""What every driver is: the `Driver` Protocol, its capabilities as data, and what it returns.

A driver owns HTTP to one endpoint and nothing else. It gets an `aiohttp.ClientSession` and a
`RequestGate` injected, speaks its dialect, returns the frozen values below and raises only the
error tree of `fleet.drivers.errors`. Capabilities are data (not scattered `if`s) so the planner
can refuse what a dialect cannot do, batch within the documented maximums and compute an ETA from
the rate limits before a single call is made.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import structlog

from fleet.domain import Action, ActionParams, Provider, Selector, ServerRef, ServerStatus
from fleet.drivers.actions import (
    ActionSpec,
    BudgetUnit,
    Capabilities,
    RateBudget,
)
from fleet.drivers.errors import NotFound, Permanent

log = structlog.get_logger("fleet.drivers")

__all__ = ["ActionSpec", "BudgetUnit", "Capabilities", "RateBudget"]

# --- rate limiting hooks ----------------------------------------------------------------------------


class RequestGate(Protocol):
    """Every HTTP call a driver makes passes here first, so lists and polls are limited too.

    The composition root adapts this to the engine's limiter with the key `"{endpoint}:{api_class}"`.
    """

    async def before(self, api_class: str, servers: int) -> None:
        """Wait until a call of `api_class` carrying `servers` servers may leave now."""
        ...

    def after(self, api_class: str, servers: int) -> None:
        """The call let through by `before` got its answer (or failed): the limiter counts it
        until a period after this moment, so latency cannot squeeze two windows into one."""
        ...

    def throttled(self, api_class: str, retry_after: float | None) -> None:
        """The cloud answered a call of `api_class` with its throttling error."""
        ...


class UnlimitedGate:
    """A gate that never waits (tests, and endpoints whose limits are enforced elsewhere)."""

    async def before(self, api_class: str, servers: int) -> None:
        return None

    def after(self, api_class: str, servers: int) -> None:
        return None

    def throttled(self, api_class: str, retry_after: float | None) -> None:
        return None


# --- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """What a cloud accepted: enough to poll it later, also after a restart (see `as_dict`).

    `job_id` is the cloud job id (Huawei v1) or None (Nova dialects: completion is read from the
    server). `done` is True when the call completed synchronously (tags, dry-run resize).
    """

    action: Action
    server_ids: tuple[str, ...]
    api_class: str
    job_id: str | None = None
    request_id: str | None = None
    done: bool = False
    flavor: str | None = None  # target flavor of a resize, to recognise its end on Nova dialects
    # The cloud's own clock when it accepted the call (ISO 8601, from the answer's `Date`), so a
    # status read of several servers may list only what changed since (Nova `changes-since`).
    since: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "action": self.action.value,
            "server_ids": list(self.server_ids),
            "api_class": self.api_class,
            "job_id": self.job_id,
            "request_id": self.request_id,
            "done": self.done,
            "flavor": self.flavor,
            "since": self.since,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Submission:
        ids = data.get("server_ids")
        return cls(
            action=Action(str(data["action"])),
            server_ids=tuple(str(i) for i in ids) if isinstance(ids, list | tuple) else (),
            api_class=str(data["api_class"]),
            job_id=_opt_str(data.get("job_id")),
            request_id=_opt_str(data.get("request_id")),
            done=bool(data.get("done", False)),
            flavor=_opt_str(data.get("flavor")),
            since=_opt_str(data.get("since")),
        )


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


class OutcomeState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ServerOutcome:
    """One server's part of a submission. `kind` says whether a failure is worth retrying."""

    server_id: str
    state: OutcomeState
    code: str | None = None
    reason: str | None = None
    kind: str | None = None  # an ErrorKind value for failures
    status: ServerStatus | None = None  # the server's status when it was read (Nova dialects)


@dataclass(frozen=True)
class PollResult:
    """The state of every server of one submission, from one poll."""

    outcomes: Mapping[str, ServerOutcome]
    job_status: str | None = None  # the cloud job's own status word, when there is a job

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcomes", MappingProxyType(dict(self.outcomes)))

    @property
    def finished(self) -> bool:
        return all(o.state is not OutcomeState.RUNNING for o in self.outcomes.values())


@dataclass(frozen=True)
class InstanceAction:
    """One entry of a server's action history as the cloud keeps it (Nova's
    `os-instance-actions`): what was done (`reboot`, `stop`, ...), when it started in the cloud's
    clock (UTC), and the request that caused it."""

    action: str
    start_time: datetime
    request_id: str | None = None


@dataclass(frozen=True)
class CreateRequest:
    """One create call: `count` servers named `name` (a batch API names them `name-0001`, ...),
    from `CreateParams` with the flavor as the endpoint's id and every tag to set (the
    operation's identity tag among them). `admin_password` is the secret itself, read just before
    the call from the request's reference and never kept."""

    name: str
    count: int
    flavor: str
    image: str
    network: str
    tags: Mapping[str, str]
    vpc: str | None = None
    availability_zone: str | None = None
    key_name: str | None = None
    admin_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Quota:
    """How many servers the project has and may have (the cloud's absolute limits)."""

    used: int
    limit: int

    @property
    def room(self) -> int:
        return max(0, self.limit - self.used)


# --- the Protocol ----------------------------------------------------------------------------------


class Driver(Protocol):
    """One endpoint of one provider."""

    @property
    def endpoint(self) -> str:
        """The endpoint's configured name (the first half of every rate key)."""
        ...

    @property
    def provider(self) -> Provider: ...

    @property
    def capabilities(self) -> Capabilities: ...

    def max_batch(self, action: Action) -> int:
        """Servers per call for `action` (1 = no batch API); raises Unsupported."""
        ...

    def check(self, action: Action, params: ActionParams) -> None:
        """Raise Unsupported (with the reason) if this dialect cannot do `action` with `params`."""
        ...

    def list_servers(self, selector: Selector) -> AsyncIterator[ServerRef]:
        """Every server matching `selector`, following the dialect's paging to the end."""
        ...

    async def get_server(self, server_id: str) -> ServerRef: ...

    async def submit(
        self, action: Action, ids: Sequence[str], params: ActionParams
    ) -> Submission: ...

    async def poll(self, submission: Submission) -> PollResult: ...

    async def create(self, request: CreateRequest) -> Submission:
        """Send one create call (`Action.CREATE`); the submission carries the cloud's job id
        (Huawei) or the new server's id (Nova). Raises the driver error tree."""
        ...

    async def quota(self) -> Quota | None:
        """The project's server quota as the cloud reports it (None: it reports none)."""
        ...

    def list_created(
        self, tag: tuple[str, str], name_prefix: str, since: str | None = None
    ) -> AsyncIterator[ServerRef]:
        """Every server that creates carrying `tag` (key, value) made, among those whose name
        starts with `name_prefix`: by the tag where the cloud takes tags at creation, else by
        what the create wrote instead (Nova below 2.52: server metadata). With `since` (the
        cloud's clock, ISO 8601) a driver may list only the servers changed since about then
        (Nova's `changes-since`), deleted ones left out; a driver without such a filter lists
        them all."""
        ...

    async def flavors(self) -> frozenset[str]:
        """The flavor ids a resize on this endpoint may name (what the driver sends as
        `flavorRef`), read through the gate like every call and cached for a few minutes
        (`FlavorCache`); raises the driver error tree when the cloud cannot answer."""
        ...

    async def flavor_table(self) -> Mapping[str, str]:
        """Every flavor, id -> name (the same cached read as `flavors`)."""
        ...

    async def cloud_clock(self) -> datetime | None:
        """The latest time the cloud's clock showed in an answer (`CloudClock`): a lower bound,
        in the cloud's clock, of the time of a call sent after now. Before any answer, one cheap
        read (a one-item flavor list) learns it; None if the cloud sends no `Date`."""
        ...

    async def instance_actions(self, server_id: str) -> Sequence[InstanceAction] | None:
        """The server's action history (`InstanceAction`), None where the cloud keeps none
        (the endpoint does not serve the API): no evidence either way."""
        ...


@runtime_checkable
class Discovering(Protocol):
    """A driver whose capabilities depend on what its cloud serves (OpenStack: the compute
    version document): `discover` reads it; until then the capabilities are the static
    declaration."""

    async def discover(self) -> None: ...


DISCOVERY_WAIT = 5.0  # seconds a reader waits for discovery before it goes on with what is known


async def discover_all(
    drivers: Mapping[str, object], wait: float = DISCOVERY_WAIT
) -> dict[str, asyncio.Task[None]]:
    """Start every discovering driver's discovery and wait up to `wait` seconds for all of them.
    A failure is logged, never raised: the driver keeps its declaration and tries again on first
    use. Returns the tasks still running (the caller cancels them when it stops)."""
    tasks = {
        name: asyncio.create_task(_discover(name, d), name=f"discover:{name}")
        for name, d in drivers.items()
        if isinstance(d, Discovering)
    }
    if tasks:
        await asyncio.wait(tasks.values(), timeout=wait)
    return {name: t for name, t in tasks.items() if not t.done()}


async def _discover(name: str, driver: Discovering) -> None:
    try:
        await driver.discover()
    except Exception as exc:  # the endpoint keeps its declaration; the next use tries again
        log.warning("discovery_failed", endpoint=name, error=f"{type(exc).__name__}: {exc}")


FLAVOR_TTL = 300.0  # seconds a flavor list is trusted: flavors change rarely, lists cost a call


class FlavorCache:
    """One driver's flavor list, fetched at most once per `ttl` (concurrent callers share the
    fetch). A failed fetch is not cached: the next caller tries again."""

    def __init__(
        self, ttl: float = FLAVOR_TTL, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._lock = asyncio.Lock()
        self._value: Mapping[str, str] | None = None
        self._at = 0.0

    def _fresh(self) -> Mapping[str, str] | None:
        if self._value is not None and self._clock() - self._at < self._ttl:
            return self._value
        return None

    async def get(self, fetch: Callable[[], Awaitable[Mapping[str, str]]]) -> Mapping[str, str]:
        cached = self._fresh()
        if cached is not None:
            return cached
        async with self._lock:
            cached = self._fresh()
            if cached is not None:
                return cached
            value = await fetch()
            self._value, self._at = value, self._clock()
            return value


def resolve_flavor(table: Mapping[str, str], flavor: str) -> str | None:
    """The id of `flavor` given by id or by name (None: unknown, or a name several flavors
    share)."""
    if flavor in table:
        return flavor
    ids = [i for i, name in table.items() if name == flavor]
    return ids[0] if len(ids) == 1 else None


def check_batch(spec: ActionSpec, ids: Sequence[str]) -> None:
    """Refuse an empty batch, duplicates, or more servers than the dialect takes in one call."""
    if not ids:
        raise Permanent(f"{spec.action.value}: no server ids given")
    if len(set(ids)) != len(ids):
        raise Permanent(f"{spec.action.value}: duplicate server ids in one call")
    if len(ids) > spec.max_batch:
        raise Permanent(
            f"{spec.action.value}: {len(ids)} servers in one call, at most {spec.max_batch}"
        )


def all_done(submission: Submission) -> PollResult:
    """The result of a submission that completed when it was accepted (tags, dry runs)."""
    return PollResult(
        {i: ServerOutcome(i, OutcomeState.DONE) for i in submission.server_ids}, job_status=None
    )


SHOW_EACH_LIMIT = 20
"""Up to this many explicit ids, a selector is answered with one GET per server; above it, one
paged list is cheaper."""


def created_selector(tag: tuple[str, str], name_prefix: str) -> Selector:
    """The servers a create tagged `tag` made, named from `name_prefix` (a literal prefix: the
    names fleet gives have no glob characters)."""
    return Selector(tags_all={tag[0]: tag[1]}, name_pattern=f"{name_prefix}*")


def shows_each(selector: Selector) -> bool:
    return bool(selector.ids) and len(selector.ids) <= SHOW_EACH_LIMIT


async def servers_by_id(
    selector: Selector,
    show: Callable[[str], Awaitable[ServerRef]],
    keep: Callable[[ServerRef], bool] = lambda _: True,
) -> AsyncIterator[ServerRef]:
    """The selector's servers, read one by one by id (gone ones left out), in id order."""
    for server_id in sorted(selector.ids):
        try:
            server = await show(server_id)
        except NotFound:
            continue
        if keep(server) and selector.matches(server):
            yield server
