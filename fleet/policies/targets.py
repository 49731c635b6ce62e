"""A fire's target list: the policy's selector through the drivers, then its tag rules per server,
then the operation it creates (explicit server ids, so the operation acts on exactly what the
rules allowed at fire time and its history shows them).

Why explicit ids rather than extra selector criteria: snooze dates, expiry dates and markers are
compared to the slot's day, which a selector cannot express; and the fire's record can then say
which servers were left out and why. The policy's own selector and exclusion tag stay in the
operation too, so the planner re-checks them (a server re-tagged in between is dropped) and still
skips excluded servers and servers already in the target state. An empty list creates no
operation at all: `ids = []` would mean "no id filter", i.e. everything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol, cast

from fleet.domain import Action, ActionParams, Selector, ServerRef
from fleet.drivers.actions import Capabilities
from fleet.drivers.base import resolve_flavor
from fleet.drivers.errors import DriverError
from fleet.engine.admission import ActRequest
from fleet.engine.opspec import params_json
from fleet.engine.planner import skip_reason, unsupported_reason
from fleet.policies.marks import FLEET, MarkBook, MarkReader
from fleet.policies.model import Policy
from fleet.policies.store_marks import KeptMark
from fleet.policies.tags import NOT_DUE, mark_value, verdict
from jobs.approval import ApprovalRules
from jobs.records import NewOperation
from jobs.strategy import BlastRadius, Strategy
from jobs.types import JSONMapping, JSONObject, JSONValue

SAMPLES = 200  # skipped servers named in a fire's details (all are counted)


class TargetsUnavailable(Exception):
    """The targets cannot be listed now (an endpoint the policy names is not configured)."""


class ServerLister(Protocol):
    """What the policies need of a driver (every `fleet.drivers.base.Driver` is one): listing,
    and `check` (whether the dialect can add a tag: see `fleet.policies.marks`)."""

    def list_servers(self, selector: Selector) -> AsyncIterator[ServerRef]: ...

    def check(self, action: Action, params: ActionParams) -> None: ...

    @property
    def capabilities(self) -> Capabilities:
        """What the endpoint's dialect declares it can do (`fleet.drivers.actions`)."""
        ...

    async def flavor_table(self) -> Mapping[str, str]: ...


Inventory = Mapping[str, ServerLister]  # endpoint name -> driver


@dataclass(frozen=True)
class Considered:
    """One server a fire looked at: act on it, or why not (or, for clean-up, why it is due)."""

    endpoint: str
    server_id: str
    name: str
    status: str
    act: bool
    reason: str
    planner_skip: str | None = None  # acted on, but the planner will skip it (its reason)
    mark_kept: str | None = None  # mark and clean-up modes: "tag", or "fleet" (no tag API)

    @classmethod
    def of(
        cls,
        server: ServerRef,
        act: bool,
        reason: str,
        policy: Policy | None = None,
        caps: Capabilities | None = None,
        mark_kept: str | None = None,
    ) -> Considered:
        """A server the policy's rules judged: a dialect that does not offer the action leaves
        it out with that reason (as an operation skips it), else the planner's skip is noted."""
        skip = None
        if act and policy is not None and caps is not None and policy.spec.mode != "mark":
            missing = unsupported_reason(caps, policy.action)
            if missing is not None:
                act, reason = False, f"unsupported: {missing}"
            else:
                skip = skip_reason(
                    caps, policy.action, server, policy.params, policy.targets.exclude_tag
                )
        status = server.status.value
        return cls(server.endpoint, server.id, server.name, status, act, reason, skip, mark_kept)


@dataclass(frozen=True)
class Evaluation:
    """Every server a fire looked at, with the verdict; plus what restore mode consumed."""

    considered: tuple[Considered, ...]
    params: JSONObject
    consumed: tuple[int, ...] = ()
    notes: JSONObject = field(default_factory=dict)
    kept_marks: tuple[KeptMark, ...] = ()  # mark mode: the marks fleet keeps (no tag API)

    @property
    def acting(self) -> list[Considered]:
        return [c for c in self.considered if c.act]

    @property
    def operating(self) -> list[Considered]:
        """The servers the fire's operation acts on: all acting ones but those whose mark fleet
        keeps itself (their dialect cannot take a tag)."""
        kept = {(m.endpoint, m.server_id) for m in self.kept_marks}
        return [c for c in self.considered if c.act and (c.endpoint, c.server_id) not in kept]

    def details(self) -> JSONObject:
        skipped = [c for c in self.considered if not c.act]
        by_reason = Counter(c.reason for c in skipped)
        samples: list[JSONValue] = []
        for c in skipped:
            if c.reason != NOT_DUE and len(samples) < SAMPLES:
                sample: JSONObject = {"endpoint": c.endpoint, "server_id": c.server_id}
                samples.append(sample | {"name": c.name, "reason": c.reason})
        out: JSONObject = {
            "considered": len(self.considered),
            "acting": len(self.considered) - len(skipped),
            "skipped_by_reason": dict(sorted(by_reason.items())),
            "skipped": samples,
        }
        if self.consumed:
            out["restored_fires"] = list(self.consumed)
        if self.kept_marks:
            out["marks_kept_by_fleet"] = len(self.kept_marks)
        out.update(self.notes)
        return out


async def list_targets(policy: Policy, inventory: Inventory) -> AsyncIterator[ServerRef]:
    """Every server the policy's selector matches, endpoint by endpoint."""
    for name in policy.targets.endpoints or sorted(inventory):
        if name not in inventory:
            raise TargetsUnavailable(f"endpoint {name!r} is not configured")
        async for server in inventory[name].list_servers(policy.targets.selector):
            if policy.targets.selector.matches(server):
                yield server


def action_params(policy: Policy, day: date) -> JSONObject:
    """The operation's params: the policy's own, or the mark tag computed for the slot's day."""
    params = cast(JSONObject, params_json(policy.params))
    if policy.spec.mode == "mark":
        tag, value = mark_value(policy, day)
        params["tags"] = {tag: value}
    return params


class FlavorBook:
    """For one evaluation: per endpoint, whether it lists the policy's flavor (by id or name).
    A server on an endpoint that does not is left out with the reason, as an operation whose
    selector does not name that endpoint would let the cloud refuse it; the fire's operation
    names its endpoints, so admission would otherwise refuse the whole fire for one cloud."""

    def __init__(self, policy: Policy, inventory: Inventory) -> None:
        self._flavor = policy.params.flavor if policy.spec.mode != "mark" else None
        self._inventory = inventory
        self._known: dict[str, str | None] = {}

    async def missing(self, endpoint: str) -> str | None:
        if self._flavor is None:
            return None
        if endpoint not in self._known:
            self._known[endpoint] = await self._check(endpoint, self._flavor)
        return self._known[endpoint]

    async def _check(self, endpoint: str, flavor: str) -> str | None:
        try:
            table = await self._inventory[endpoint].flavor_table()
        except DriverError:
            return None  # cannot tell: the cloud decides
        if resolve_flavor(table, flavor) is not None:
            return None
        return f"unsupported: flavor {flavor!r} is not listed on {endpoint}"


async def evaluate(
    policy: Policy, inventory: Inventory, day: date, marks: MarkReader | None = None
) -> Evaluation:
    """Normal, clean-up and mark modes: the selector's servers, each judged by the tag rules.
    On an endpoint that keeps no tags, a server's marks are read from (and a mark policy's new
    marks are for) fleet's own table (`marks`; see `fleet.policies.marks`)."""
    book = MarkBook(policy, inventory, marks)
    flavors = FlavorBook(policy, inventory)
    considered: list[Considered] = []
    kept: list[KeptMark] = []
    async for server in list_targets(policy, inventory):
        where = book.where(server.endpoint)
        v = verdict(policy, server, day, await book.fleet_marks(server.endpoint, server.id))
        act, reason = v.act, v.reason
        if act and policy.spec.mode == "mark" and _excluded(policy, server):
            act, reason = False, "excluded"  # never marked, wherever the mark would be kept
        missing = await flavors.missing(server.endpoint) if act else None
        if missing is not None:
            act, reason = False, missing
        caps = inventory[server.endpoint].capabilities
        considered.append(Considered.of(server, act, reason, policy, caps, where))
        if act and where == FLEET and policy.spec.mode == "mark":
            kept.append(KeptMark(server.endpoint, server.id, *mark_value(policy, day)))
    return Evaluation(tuple(considered), action_params(policy, day), kept_marks=tuple(kept))


def _excluded(policy: Policy, server: ServerRef) -> bool:
    exclude = policy.targets.exclude_tag
    return exclude is not None and server.tags.get(exclude[0]) == exclude[1]


def operation_request(
    policy: Policy,
    evaluation: Evaluation,
    *,
    key: str,
    reason: str,
    by: str,
) -> ActRequest:
    """The request to act a fire makes (its fingerprint depends only on the servers chosen),
    admitted through the one door like any other: the endpoints' configured limits are a ceiling
    its guard only tightens. Policies are written by admins, so a clean-up's own guard (which it
    must have) stands in for the delete guard. Servers whose marks fleet keeps are not in it."""
    acting = evaluation.operating
    selector = dict(cast(JSONObject, policy.spec.targets))
    endpoints: list[JSONValue] = [*sorted({s.endpoint for s in acting})]
    ids: list[JSONValue] = [*sorted({s.server_id for s in acting})]
    selector.update(endpoints=endpoints, ids=ids)
    return ActRequest(
        action=policy.action,
        targets=selector,
        params=evaluation.params,
        strategy=policy.strategy.to_json(),
        guard=None if policy.guard is None else policy.guard.to_json(),
        dry_run=policy.spec.dry_run_only,
        reason=reason,
        created_by=by,
        idempotency_key=key,
        admin=True,
        require_approval=(
            f"policy {policy.name} requires approval of its fires"
            if policy.spec.require_approval
            else None
        ),
    )


def request_json(new: NewOperation) -> JSONObject:
    return {
        "kind": new.kind,
        "params": dict(new.params),
        "selector": dict(new.selector),
        "strategy": new.strategy.to_json(),
        "guard": None if new.guard is None else new.guard.to_json(),
        "dry_run": new.dry_run,
        "reason": new.reason,
        "created_by": new.created_by,
        "idempotency_key": new.idempotency_key,
        "approval": None if new.approval is None else new.approval.to_json(),
    }


def request_from_json(raw: JSONMapping) -> NewOperation:
    guard = raw.get("guard")
    strategy = raw.get("strategy")
    approval = raw.get("approval")
    params, selector = raw.get("params"), raw.get("selector")
    assert isinstance(params, dict) and isinstance(selector, dict)
    return NewOperation(
        kind=str(raw["kind"]),
        params=params,
        selector=selector,
        strategy=Strategy.from_json(strategy if isinstance(strategy, dict) else {}),
        guard=BlastRadius.from_json(guard) if isinstance(guard, dict) else None,
        dry_run=bool(raw.get("dry_run")),
        reason=str(raw.get("reason") or ""),
        created_by=str(raw.get("created_by") or ""),
        idempotency_key=str(raw["idempotency_key"]),
        approval=ApprovalRules.from_json(approval) if isinstance(approval, dict) else None,
    )


async def snapshot(
    inventory: Inventory, ids: Mapping[str, Sequence[str]]
) -> dict[tuple[str, str], ServerRef]:
    """The current state of given servers, per endpoint (endpoints no longer configured: none)."""
    out: dict[tuple[str, str], ServerRef] = {}
    for endpoint, server_ids in sorted(ids.items()):
        driver = inventory.get(endpoint)
        if driver is None or not server_ids:
            continue
        async for server in driver.list_servers(Selector(ids=frozenset(server_ids))):
            out[(endpoint, server.id)] = server
    return out
