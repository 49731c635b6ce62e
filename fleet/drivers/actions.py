"""What an action means on a dialect, declared once by its driver as data that the rest reads.

Two levels:

- `ActionSpec`: one driver call (`stop`, `resize`, `confirm_resize`, ...): its rate class and batch
  size, what it leads to (`goal`), from which statuses it is pointless (`skip_from`), how the cloud
  shows it happened (`evidence`, and `verify_by` for a send that may or may not have reached the
  cloud), and its expected duration for the ETA.
- `Offer`: what a user may ask for (an operation's `kind`: `stop`, `resize`, ...) on a dialect:
  the recipes of steps that do it (chosen per server by their conditions), the step whose goal says
  the server needs nothing (`main`), or why the dialect cannot do it (`unsupported_because`).

The planner (skips, recipes, rate keys), the executor (steps, compensation, verification), the
plan's ETA, admission, the API's endpoint listing, the CLI and the docs read these declarations;
nothing outside a driver package branches on a provider or a dialect (architecture 5c).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from fleet.domain import Action, ActionParams, ServerRef, ServerStatus
from fleet.drivers.errors import Unsupported


class BudgetUnit(StrEnum):
    REQUESTS = "requests"
    SERVERS = "servers"


@dataclass(frozen=True)
class RateBudget:
    """At most `limit` units in any window of `period` seconds (plain data; the engine enforces)."""

    limit: int
    period: float
    unit: BudgetUnit = BudgetUnit.REQUESTS


class Goal(StrEnum):
    """What a call leads to, so a server already there is skipped and a read-back recognises it."""

    STATUS = "status"  # the server settles in `leads_to` (a server already there needs nothing)
    FLAVOR = "flavor"  # the server has the requested flavor
    TAGS_SET = "tags_set"  # every requested tag is on the server
    TAGS_UNSET = "tags_unset"  # none of the requested tags is on the server
    EVENT = "event"  # something happens and the server settles in `leads_to` again (reboot)
    STEP = "step"  # a step inside a recipe (confirm, revert): never a user's request on its own
    # New servers appear: planned from the request's `count` (one target per server to create,
    # not a listing), found again by the identity written ahead of the call (`fleet.engine.creating`)
    CREATED = "created"


class Evidence(StrEnum):
    """How the cloud shows that a call happened."""

    CLOUD_JOB = "cloud_job"  # the cloud job's sub-job for the server
    STATE = "state"  # the status or flavor the server reached
    # the server's action history (Nova's `os-instance-actions`): an action recorded as
    # `ActionSpec.recorded_as` that started at or after the send (`fleet.engine.evidence`)
    INSTANCE_ACTION = "instance_action"
    ANSWER = "answer"  # the call answers when it is done (tags)


# Typical seconds until the server settles, for the ETA only (polls decide when a server is
# done); a driver declares its own where its cloud differs, an endpoint's `action_seconds` wins.
TYPICAL_SECONDS: Mapping[Action, float] = MappingProxyType(
    {
        Action.START: 20.0,
        Action.STOP: 20.0,
        Action.REBOOT: 30.0,
        Action.RESIZE: 60.0,
        Action.CONFIRM_RESIZE: 5.0,
        Action.REVERT_RESIZE: 20.0,
        Action.TAG_ADD: 0.0,
        Action.TAG_REMOVE: 0.0,
        Action.DELETE: 15.0,
        Action.CREATE: 30.0,
    }
)


@dataclass(frozen=True)
class ActionSpec:
    """How one dialect performs one driver call.

    - `api_class`: the rate class of the call (the engine's rate key is `"{endpoint}:{api_class}"`);
      `counts_servers`: its budget is counted in servers; `max_batch`: servers per call.
    - `goal` / `leads_to`: what the call leads to; `skip_from`: settled statuses from which the
      call is pointless, with the reason the server is skipped.
    - `evidence`: how completion is read; `verify_by`: how a send that may have reached the cloud
      (a crash, a lost answer) is judged from the server before anything is sent again.
    - `recorded_as`: the name of the call in the server's action history, where `verify_by`
      reads that history (`reboot`).
    - `seconds`: expected duration (None: `TYPICAL_SECONDS`).
    """

    action: Action
    api_class: str
    max_batch: int
    goal: Goal
    leads_to: ServerStatus | None = None
    skip_from: Mapping[ServerStatus, str] = field(default_factory=lambda: MappingProxyType({}))
    counts_servers: bool = False
    evidence: Evidence = Evidence.STATE
    verify_by: Evidence = Evidence.STATE
    seconds: float | None = None
    recorded_as: str | None = None
    # Where a step without a status of its own (confirm, revert) leaves the server settled.
    settles_in: frozenset[ServerStatus] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "skip_from", MappingProxyType(dict(self.skip_from)))

    def settled_there(self, server: ServerRef) -> bool:
        """Whether `server` has settled where this call leaves it (read after the call, or
        after a send that may have reached the cloud). A settled server carrying a fault has
        not (some clouds roll a failed action back), unless it is gone."""
        if not server.settled:
            return False
        if server.fault and self.leads_to is not ServerStatus.DELETED:
            return False
        targets = self.settles_in or (
            frozenset({self.leads_to}) if self.leads_to is not None else frozenset()
        )
        return not targets or server.status in targets

    @property
    def duration(self) -> float:
        return self.seconds if self.seconds is not None else TYPICAL_SECONDS.get(self.action, 10.0)

    def reached(self, server: ServerRef, params: ActionParams) -> bool:
        """Whether `server` already shows what the call leads to (with `params`)."""
        if self.goal is Goal.STATUS:
            return server.status is self.leads_to
        if self.goal is Goal.FLAVOR:
            return params.flavor is not None and server.flavor == params.flavor
        if self.goal is Goal.TAGS_SET:
            return all(server.tags.get(k) == v for k, v in params.tags.items())
        if self.goal is Goal.TAGS_UNSET:
            return not any(
                k in server.tags and (not v or server.tags[k] == v) for k, v in params.tags.items()
            )
        return False

    def skip_reason(self, server: ServerRef, params: ActionParams) -> str | None:
        """Why `server` needs no call of this action (None: send it)."""
        if self.reached(server, params):
            return _already(self, params)
        return self.skip_from.get(server.status)


def _already(spec: ActionSpec, params: ActionParams) -> str:
    if spec.goal is Goal.FLAVOR:
        return f"already flavor {params.flavor}"
    if spec.goal is Goal.TAGS_SET:
        return "already tagged"
    if spec.goal is Goal.TAGS_UNSET:
        return "no such tags"
    return f"already {spec.leads_to}"


@dataclass(frozen=True)
class Step:
    """One call of a recipe."""

    action: Action
    only_if_running: bool = False  # only for servers that were running when planned
    on_failure_only: bool = False  # a compensation step (revert), never reached on success
    compensated: bool = False  # a failure of this step runs the recipe's compensation step
    # A compensation step only: what it does, for the sub-job's reason while it runs and for the
    # failure reported once it is done; and the code reported then (None: the failure's own code).
    doing: str = ""
    done: str = ""
    code: str | None = None


@dataclass(frozen=True)
class Recipe:
    """The steps of one way to do a kind. Chosen once per server at planning and stored by
    `name` on its sub-job, so a restart resumes the very same steps; names are never reused.

    `when_live` / `when_status`: the recipe is chosen only for a request with that `live` and a
    server in one of those statuses (None: any)."""

    name: str
    steps: tuple[Step, ...]
    live: bool = False  # the driver sends its live variant of the call
    when_live: bool | None = None
    when_status: frozenset[ServerStatus] | None = None

    def fits(self, params: ActionParams, status: ServerStatus | None) -> bool:
        if self.when_live is not None and params.live != self.when_live:
            return False
        return self.when_status is None or status in self.when_status

    def step(self, index: int) -> Step:
        return self.steps[index]

    def next_step(self, index: int, was_running: bool) -> int | None:
        """The next step to run after `index` succeeded, or None when the operation is done."""
        for nxt in range(index + 1, len(self.steps)):
            candidate = self.steps[nxt]
            if candidate.on_failure_only:
                return None
            if candidate.only_if_running and not was_running:
                continue
            return nxt
        return None

    def first_step(self, was_running: bool) -> int | None:
        """The first step that applies to a server (None: nothing to do)."""
        first = self.steps[0]
        if first.only_if_running and not was_running:
            return self.next_step(0, was_running)
        return 0

    def revert_step(self) -> int | None:
        for index, step in enumerate(self.steps):
            if step.on_failure_only:
                return index
        return None

    def compensation(self, failed: int, was_running: bool) -> int | None:
        """The compensation step to run after step `failed` failed (None: the failure is final,
        nothing to undo: the step is not `compensated`, or the compensation does not apply to the
        server, e.g. "start again" for a server that was not running)."""
        if not self.steps[failed].compensated:
            return None
        index = self.revert_step()
        if index is None:
            return None
        if self.steps[index].only_if_running and not was_running:
            return None
        return index


def single(kind: str, action: Action) -> Recipe:
    """The recipe of a kind that is one call."""
    return Recipe(kind, (Step(action),))


@dataclass(frozen=True)
class Offer:
    """What a dialect offers for one kind: its recipes (the first that fits a server is used) and
    the call whose goal says a server needs nothing; or why the dialect cannot do it."""

    kind: str
    main: Action
    recipes: tuple[Recipe, ...] = ()
    unsupported_because: str | None = None
    destructive: bool = False  # cannot be undone: admission holds it to the delete guard
    needs: tuple[str, ...] = ()  # params that must be given (`flavor`, `tags`)
    note: str = ""  # a condition the dialect offers it under (the capability table shows it)

    @property
    def supported(self) -> bool:
        return self.unsupported_because is None and bool(self.recipes)


def simple(kind: str, action: Action) -> Offer:
    needs = ("tags",) if action in (Action.TAG_ADD, Action.TAG_REMOVE) else ()
    recipes = (single(kind, action),)
    return Offer(kind, action, recipes, destructive=action is Action.DELETE, needs=needs)


def unsupported(kind: str, main: Action, because: str) -> Offer:
    return Offer(kind, main, (), because)


@dataclass(frozen=True)
class Capabilities:
    """Everything a dialect declares: its calls, the kinds it offers, its default budgets."""

    actions: Mapping[Action, ActionSpec]
    offers: Mapping[str, Offer]
    dialect: str
    # api_class -> default budgets (from the seeds, or a documented conservative default)
    budgets: Mapping[str, tuple[RateBudget, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    _recipes: Mapping[str, Recipe] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", MappingProxyType(dict(self.actions)))
        object.__setattr__(self, "offers", MappingProxyType(dict(self.offers)))
        object.__setattr__(self, "budgets", MappingProxyType(dict(self.budgets)))
        recipes = {r.name: r for offer in self.offers.values() for r in offer.recipes}
        object.__setattr__(self, "_recipes", MappingProxyType(recipes))
        for recipe in recipes.values():
            for step in recipe.steps:
                if step.action not in self.actions:
                    raise ValueError(f"{self.dialect}: {recipe.name} calls {step.action}")

    @property
    def supported(self) -> frozenset[Action]:
        return frozenset(self.actions)

    def spec(self, action: Action) -> ActionSpec:
        """The spec of a call; raises Unsupported naming the dialect."""
        spec = self.actions.get(action)
        if spec is None:
            raise Unsupported(f"{self.dialect} does not support {action.value}")
        return spec

    def has(self, kind: str) -> bool:
        offer = self.offers.get(kind)
        return offer is not None and offer.supported

    def creates(self, kind: str) -> bool:
        """Whether `kind` makes new servers here (planned from its count, not from a listing)."""
        return self.has(kind) and self.actions[self.offers[kind].main].goal is Goal.CREATED

    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k, o in self.offers.items() if o.supported)

    def offer(self, kind: str) -> Offer:
        """The offer for `kind`; raises Unsupported with the reason the dialect declares."""
        offer = self.offers.get(kind)
        if offer is None:
            raise Unsupported(f"{self.dialect} does not support {kind}")
        if not offer.supported:
            raise Unsupported(f"{self.dialect}: {offer.unsupported_because}")
        return offer

    def recipe_for(self, kind: str, params: ActionParams, status: ServerStatus | None) -> Recipe:
        """The recipe for `kind` on a server in `status` (None: not known yet)."""
        offer = self.offer(kind)
        for recipe in offer.recipes:
            if recipe.fits(params, status):
                return recipe
        return offer.recipes[-1]

    def recipe(self, name: str) -> Recipe:
        """A recipe by its stored name (a sub-job planned earlier names it); KeyError if none."""
        return self._recipes[name]

    def skip_reason(self, kind: str, server: ServerRef, params: ActionParams) -> str | None:
        """Why `server` needs no call for `kind` here (None: act on it)."""
        if server.status is ServerStatus.DELETED:
            return "already deleted"
        offer = self.offer(kind)
        return self.actions[offer.main].skip_reason(server, params)


def needs_of(declarations: Iterable[Capabilities]) -> Mapping[str, tuple[str, ...]]:
    """kind -> the params every dialect that offers it needs."""
    out: dict[str, set[str]] = {}
    for caps in declarations:
        for kind, offer in caps.offers.items():
            out.setdefault(kind, set()).update(offer.needs)
    return MappingProxyType({k: tuple(sorted(v)) for k, v in out.items()})


def kinds_of(declarations: Iterable[Capabilities]) -> tuple[str, ...]:
    """Every kind any dialect declares, in the order first declared."""
    seen: dict[str, None] = {}
    for caps in declarations:
        for kind in caps.offers:
            seen.setdefault(kind, None)
    return tuple(seen)


# --- the declarations every dialect shares ---------------------------------------------------------

S = ServerStatus
ALIVE = frozenset(set(S) - {S.DELETED, S.DELETING})
SIMPLE_KINDS: Mapping[str, Action] = MappingProxyType(
    {
        "start": Action.START,
        "stop": Action.STOP,
        "reboot": Action.REBOOT,
        "tag_add": Action.TAG_ADD,
        "tag_remove": Action.TAG_REMOVE,
        "delete": Action.DELETE,
    }
)
NOT_RUNNING = MappingProxyType({S.STOPPED: "not running (stopped)"})
AFTER_RESIZE = frozenset({S.RUNNING, S.STOPPED})  # where a confirm or a revert leaves a server


def power(
    action: Action,
    api_class: str,
    max_batch: int,
    *,
    counts_servers: bool = False,
    evidence: Evidence = Evidence.STATE,
) -> ActionSpec:
    """Start, stop or reboot: what they lead to is the same on every dialect. A finished reboot
    leaves the server as it found it, so a send that may have reached the cloud is judged by the
    server's action history (an edit of the server in between proves nothing)."""
    if action is Action.REBOOT:
        return ActionSpec(
            action, api_class, max_batch, Goal.EVENT, S.RUNNING, skip_from=NOT_RUNNING,
            counts_servers=counts_servers, evidence=evidence,
            verify_by=Evidence.INSTANCE_ACTION, recorded_as="reboot",
        )  # fmt: skip
    leads_to = S.RUNNING if action is Action.START else S.STOPPED
    return ActionSpec(
        action, api_class, max_batch, Goal.STATUS, leads_to,
        counts_servers=counts_servers, evidence=evidence,
    )  # fmt: skip


def tags(api_class: str) -> tuple[ActionSpec, ActionSpec]:
    """Tag add and remove: synchronous, one server per call on every dialect."""
    return (
        ActionSpec(Action.TAG_ADD, api_class, 1, Goal.TAGS_SET, evidence=Evidence.ANSWER),
        ActionSpec(Action.TAG_REMOVE, api_class, 1, Goal.TAGS_UNSET, evidence=Evidence.ANSWER),
    )


CREATE_NEEDS = ("count", "name", "flavor", "image", "network")


def creating(api_class: str, max_batch: int) -> tuple[ActionSpec, Offer]:
    """Server creation: `max_batch` servers per call (1: one per call, named each from the
    template; more: the cloud names a batch's servers from one base name, `-0001`, `-0002`...)."""
    spec = ActionSpec(Action.CREATE, api_class, max_batch, Goal.CREATED, S.RUNNING)
    return spec, Offer(
        "create", Action.CREATE, (single("create", Action.CREATE),), needs=CREATE_NEEDS
    )
