"""The one door: every request to act is admitted here, whoever asks.

`POST /v1/operations` (and its dry run), the CLI (through the API), a policy when it is created or
replaced, and each fire of a policy build an `ActRequest` and call `Admission.admit`. It reads the
drivers' declarations (`fleet.drivers.actions`) and each endpoint's flavor catalogue, and answers a
`NewOperation` to write, or raises `FieldError` naming the field as the client wrote it
(`targets.endpoints[1]`, `params.flavor`, `guard`). Nothing is written here, so a refusal leaves
no trace. A policy can therefore never do what the operations API would refuse.

What it checks, in order:

- the selector says something (`{}` would be the whole fleet) and names only known endpoints;
- `params` parse for the action;
- an endpoint the selector names offers the action (an OpenStack endpoint as its version
  document says: whether it serves the tag API; read at start-up, awaited here if it is not yet), with these params (servers of endpoints that
  do not offer it, reached by a selector that does not name them, are skipped by the planner with
  the reason); at least one targeted endpoint offers it;
- a resize's flavor is listed by the named endpoints (or by one that can resize);
- the guard: the limits configured on the endpoints are a ceiling a request can only tighten; a
  delete is held to the configured delete guard unless an admin gives a guard of their own;
- the approval rules (`[approvals]`, a policy's `require_approval`): the operation is planned,
  then waits for another token's approval when one holds for its plan (`jobs.approval`); a delete
  beyond the delete guard is such a plan, by default.
- a kind that makes servers (a create): it names its endpoints, asks for at most the create
  ceiling per endpoint, and fits the quota each endpoint reports (`Driver.quota`); its guard is
  that ceiling (a percentage of an existing fleet says nothing of servers that do not exist yet).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from fleet.domain import ActionParams
from fleet.drivers.actions import Goal
from fleet.drivers.base import Discovering, Driver, Quota, resolve_flavor
from fleet.drivers.config import ConfigError
from fleet.drivers.errors import DriverError, Unsupported
from fleet.engine.creating import admin_password
from fleet.engine.opspec import parse_params, parse_targets
from jobs.approval import ApprovalRule, ApprovalRules
from jobs.errors import FieldError, InvalidSpec
from jobs.records import NewOperation
from jobs.strategy import BlastRadius, Strategy, stricter
from jobs.types import JSONObject

log = structlog.get_logger("fleet.admission")

CRITERIA = ("endpoints", "ids", "tags_all", "tags_any", "tags_none", "name", "statuses")
CREATE_CEILING = 500  # servers one create may make on each endpoint (`[guards.create]`)
# Seconds admission waits for the targeted endpoints' flavor lists (fetched concurrently, cached
# per driver): past it an endpoint counts as "cannot tell" and the request goes on.
FLAVOR_CHECK_TIMEOUT = 5.0


@dataclass(frozen=True)
class Admitted:
    """An admitted request, and the quota each endpoint a create makes servers on reported
    (those that report one)."""

    operation: NewOperation
    quotas: Mapping[str, Quota]


@dataclass(frozen=True)
class ActRequest:
    """A request to act, as any door received it (JSON values, as the client wrote them)."""

    action: str
    targets: Mapping[str, object]
    params: Mapping[str, object] = field(default_factory=dict)
    strategy: Mapping[str, object] = field(default_factory=dict)
    guard: Mapping[str, object] | None = None
    dry_run: bool = False
    reason: str = ""
    created_by: str = ""
    idempotency_key: str | None = None
    admin: bool = False  # an admin may lift the delete guard by giving a guard of their own
    require_approval: str | None = None  # why every (non-empty) plan of it needs approval


@dataclass(frozen=True)
class ApprovalConfig:
    """When an admitted operation waits for a second token's approval (`[approvals]`)."""

    deletes_beyond_guard: bool = False  # a delete beyond the delete guard (an admin's own guard)
    max_servers: int | None = None  # acting on more servers
    endpoints: frozenset[str] = frozenset()  # acting on any server of these
    window_seconds: float = 86400.0


def _named(exc: FieldError, prefix: str, old: str = "") -> FieldError:
    """`exc` under the client's name of the field (`selector.x` -> `targets.x`)."""
    name = exc.field
    if old and name.startswith(old):
        name = prefix + name[len(old) :]
    elif not old:
        name = f"{prefix}{name}"
    return FieldError(name, exc.message)


class Admission:
    """Admits requests against the configured endpoints' declarations and catalogues."""

    def __init__(
        self,
        drivers: Mapping[str, Driver],
        *,
        ceiling: Callable[[Sequence[str]], BlastRadius | None] = lambda _names: None,
        delete_guard: BlastRadius | None = None,
        flavor_timeout: float | None = None,
        approvals: ApprovalConfig | None = None,
        create_ceiling: int = CREATE_CEILING,
    ) -> None:
        self.drivers = drivers
        self.create_ceiling = create_ceiling
        self.ceiling = ceiling  # the blast-radius limits configured on these endpoints
        self.delete_guard = delete_guard
        self.approvals = approvals or ApprovalConfig()
        self.flavor_timeout = flavor_timeout  # None: FLAVOR_CHECK_TIMEOUT

    async def admit(self, request: ActRequest) -> NewOperation:
        """Everything checked; nothing written. Raises FieldError naming the field."""
        return (await self.check(request)).operation

    async def check(self, request: ActRequest) -> Admitted:
        """`admit`, with what the clouds said while checking (a dry run shows it)."""
        makes_servers = any(d.capabilities.creates(request.action) for d in self.drivers.values())
        if makes_servers and not request.targets.get("endpoints"):  # it says where, nothing else
            raise FieldError("targets.endpoints", f"a {request.action} names its endpoint(s)")
        selector, named = self._selector(request.targets)
        try:
            params = parse_params(request.action, request.params)
        except FieldError as exc:
            raise (exc if exc.field == "action" else _named(exc, "params", "params")) from None
        targeted = named or sorted(self.drivers)
        await self.discovered(targeted)
        self.capabilities(request.action, params, named, targeted)
        await self.flavor(request.action, params, named)
        quotas = await self.creation(request.action, params, named)
        try:
            strategy = Strategy.from_json(dict(request.strategy))
        except InvalidSpec as exc:
            raise _named(exc, "strategy.") from None
        guard = self.guard(request, targeted)
        if quotas is not None:
            guard = stricter(BlastRadius(max_servers=self.create_ceiling * len(named)))
        new = NewOperation(
            kind=request.action,
            params=dict(request.params),  # type: ignore[arg-type]
            selector=selector,
            strategy=strategy,
            guard=guard,
            approval=self.approval(request, targeted),
            dry_run=request.dry_run,
            reason=request.reason,
            created_by=request.created_by,
            idempotency_key=request.idempotency_key,
        )
        return Admitted(new, quotas or {})

    def targets(self, raw: Mapping[str, object]) -> JSONObject:
        """The selector JSON, checked: at least one criterion, known endpoints."""
        return self._selector(raw)[0]

    def _selector(self, raw: Mapping[str, object]) -> tuple[JSONObject, list[str]]:
        """The selector JSON as given (checked) and the endpoints it names."""
        given = {k: v for k, v in raw.items() if k == "exclude_tag" or v not in ([], {}, None)}
        if not any(k in given for k in CRITERIA):
            raise FieldError(
                "targets",
                f"give at least one criterion: {', '.join(CRITERIA)} (an empty selector would "
                "be every server)",
            )
        if "ids" in raw and not raw["ids"]:
            raise FieldError("targets.ids", "must not be empty when given")
        try:
            targets = parse_targets(given)
        except FieldError as exc:
            raise _named(exc, "targets", "selector") from None
        for i, name in enumerate(targets.endpoints):
            if name not in self.drivers:
                known = ", ".join(sorted(self.drivers)) or "none"
                raise FieldError(
                    f"targets.endpoints[{i}]", f"unknown endpoint {name!r}; configured: {known}"
                )
        return dict(given), list(targets.endpoints)  # type: ignore[arg-type]

    async def discovered(self, targeted: Sequence[str]) -> None:
        """Let the targeted endpoints whose capabilities depend on their cloud (an OpenStack
        endpoint's tag API) find out first: done at start-up, so this is normally no call. Past
        `FLAVOR_CHECK_TIMEOUT`, or on a failure (logged by the driver's next use), the static
        declaration decides."""
        found = [d for n in targeted if isinstance(d := self.drivers[n], Discovering)]
        if not found:
            return
        wait = FLAVOR_CHECK_TIMEOUT if self.flavor_timeout is None else self.flavor_timeout
        try:
            async with asyncio.timeout(wait):
                outcomes = await asyncio.gather(
                    *(d.discover() for d in found), return_exceptions=True
                )
        except TimeoutError:
            log.warning("discovery_unfinished", endpoints=list(targeted))
            return
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                log.warning("discovery_failed", error=f"{type(outcome).__name__}: {outcome}")

    def capabilities(
        self, kind: str, params: ActionParams, named: Sequence[str], targeted: Sequence[str]
    ) -> None:
        """A named endpoint that does not offer `kind` (or not with these params) refuses the
        request; of the endpoints a selector reaches without naming them, at least one must
        offer it (the others' servers are skipped with the reason)."""
        offered = 0
        for i, name in enumerate(targeted):
            caps = self.drivers[name].capabilities
            where = f"targets.endpoints[{i}]" if named else "action"
            try:
                caps.offer(kind)
            except Unsupported as exc:
                if named:
                    raise FieldError(where, f"{name}: {exc.message}") from None
                continue
            offered += 1
            recipe = caps.recipe_for(kind, params, None)
            try:
                for step in recipe.steps:
                    self.drivers[name].check(step.action, params)
            except Unsupported as exc:
                raise FieldError(exc.field or "params", f"{name}: {exc.message}") from None
        if not offered:
            raise FieldError("action", f"no targeted endpoint can {kind} ({', '.join(targeted)})")

    async def flavor(self, kind: str, params: ActionParams, named: Sequence[str]) -> None:
        """Refuse a resize to a flavor the targeted endpoints do not list (by id or by name, on
        every dialect), naming `params.flavor`.

        - endpoints named in `targets.endpoints`: each must list the flavor;
        - no endpoint named: at least one endpoint that can resize must list it (flavor ids are
          per cloud; a selector of ids or names may reach only one cloud).

        A flavor list that cannot be fetched in time counts as "cannot tell" (logged): the cloud
        decides then, and a flavor it does not know fails the sub-job with its own reason.
        """
        if params.flavor is None:
            return
        asked = [n for n in (named or sorted(self.drivers)) if self._takes_flavor(n, kind)]
        if not asked:
            return
        lists = await asyncio.gather(*(self._flavors_of(n) for n in asked))
        known = dict(zip(asked, lists, strict=True))
        flavor = params.flavor
        if named:
            for name, table in known.items():
                if table is not None and resolve_flavor(table, flavor) is None:
                    raise FieldError("params.flavor", f"unknown flavor on {name}: {flavor!r}")
            return
        if any(t is None or resolve_flavor(t, flavor) is not None for t in known.values()):
            return
        raise FieldError(
            "params.flavor",
            f"unknown flavor {flavor!r}: no endpoint lists it (checked {', '.join(known)})",
        )

    async def creation(
        self, kind: str, params: ActionParams, named: Sequence[str]
    ) -> dict[str, Quota] | None:
        """For a kind that makes servers: the endpoints are named, the count is within the
        create ceiling and within each endpoint's quota (where the cloud reports one). Returns
        the quotas read (by endpoint), or None when the kind makes no servers."""
        makers = [n for n in named if self.drivers[n].capabilities.creates(kind)]
        if params.create is None or not any(
            caps.creates(kind) for caps in (d.capabilities for d in self.drivers.values())
        ):
            return None
        count = params.create.count
        if count > self.create_ceiling:
            raise FieldError(
                "params.count",
                f"{count} servers per endpoint > the create ceiling {self.create_ceiling} "
                "([guards.create] max_servers)",
            )
        try:  # read where the calls will read it: this process's environment and files
            admin_password(params.create.admin_password)
        except ConfigError as exc:
            raise FieldError("params.admin_password", f"{exc} (in the service)") from None
        quotas = await asyncio.gather(*(self._quota_of(n) for n in makers))
        for name, quota in zip(makers, quotas, strict=True):
            if quota is not None and count > quota.room:
                raise FieldError(
                    "params.count",
                    f"{count} servers exceed the quota of {name}: {quota.used} of "
                    f"{quota.limit} used, room for {quota.room}",
                )
        return {n: q for n, q in zip(makers, quotas, strict=True) if q is not None}

    async def _quota_of(self, name: str) -> Quota | None:
        try:
            wait = FLAVOR_CHECK_TIMEOUT if self.flavor_timeout is None else self.flavor_timeout
            async with asyncio.timeout(wait):
                return await self.drivers[name].quota()
        except (DriverError, TimeoutError) as exc:
            log.warning("quota_unavailable", endpoint=name, error=str(exc) or type(exc).__name__)
            return None

    def _destructive(self, name: str, kind: str) -> bool:
        """Whether the endpoint declares `kind` as one that cannot be undone (a delete)."""
        offer = self.drivers[name].capabilities.offers.get(kind)
        return offer is not None and offer.supported and offer.destructive

    def _takes_flavor(self, name: str, kind: str) -> bool:
        """Whether `kind` on the endpoint leads to a flavor (a resize): only then is a flavor
        checked against its catalogue."""
        caps = self.drivers[name].capabilities
        return caps.has(kind) and caps.spec(caps.offer(kind).main).goal in (
            Goal.FLAVOR,
            Goal.CREATED,
        )

    async def _flavors_of(self, name: str) -> Mapping[str, str] | None:
        try:
            wait = FLAVOR_CHECK_TIMEOUT if self.flavor_timeout is None else self.flavor_timeout
            async with asyncio.timeout(wait):
                return await self.drivers[name].flavor_table()
        except (DriverError, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
            log.warning("flavor_list_unavailable", endpoint=name, error=error)
            return None

    def approval(self, request: ActRequest, targeted: Sequence[str]) -> ApprovalRules | None:
        """The rules under which the operation, once planned, waits for another token's
        approval (`jobs.approval`); None when none applies (a dry run never waits)."""
        if request.dry_run:
            return None
        cfg = self.approvals
        rules: list[ApprovalRule] = []
        if request.require_approval:
            rules.append(ApprovalRule(request.require_approval))
        if cfg.max_servers is not None:
            beyond = BlastRadius(max_servers=cfg.max_servers)
            rules.append(ApprovalRule(f"acts on more than {cfg.max_servers} servers", beyond))
        rules += [
            ApprovalRule(f"endpoint {name} requires approval", scopes=(name,))
            for name in targeted
            if name in cfg.endpoints
        ]
        guard = self.delete_guard if cfg.deletes_beyond_guard else None
        lifted = self._lifted(request) and self._is_destructive(request.action, targeted)
        if guard is not None and lifted:
            reason = f"a {request.action} beyond the delete guard ({_limits(guard)})"
            rules.append(ApprovalRule(reason, guard))
        return ApprovalRules(tuple(rules), cfg.window_seconds) if rules else None

    def _lifted(self, request: ActRequest) -> bool:
        """An admin's request with a guard of its own: the delete guard does not refuse it."""
        if not request.admin or request.guard is None:
            return False
        try:
            return BlastRadius.from_json(dict(request.guard)) != BlastRadius()
        except InvalidSpec:
            return False  # `guard` names the field

    def _is_destructive(self, kind: str, targeted: Sequence[str]) -> bool:
        return any(self._destructive(n, kind) for n in targeted)

    def guard(self, request: ActRequest, targeted: Sequence[str]) -> BlastRadius | None:
        """The guard the operation runs under. The limits configured on the endpoints are a
        ceiling a request's guard only tightens. An action the dialects declare destructive (a
        delete) is also held to the configured delete guard, unless an admin's request gives a
        guard of its own (then that one applies)."""
        ceiling = self.ceiling(targeted)
        requested: BlastRadius | None = None
        if request.guard is not None:
            try:
                requested = BlastRadius.from_json(dict(request.guard))
            except InvalidSpec as exc:
                raise _named(exc, "guard.") from None
        held = not self._lifted(request) and self._is_destructive(request.action, targeted)
        return stricter(requested, self.delete_guard if held else None, ceiling)


def _limits(guard: BlastRadius) -> str:
    """`10 servers, 5% of an endpoint` (what a guard allows, for a reason)."""
    raw = guard.to_json()
    parts = [f"{raw['max_servers']} servers"] if raw["max_servers"] is not None else []
    if raw["max_percent"] is not None:
        parts.append(f"{raw['max_percent']} of an endpoint")
    return ", ".join(parts)
