"""Multi-step actions as data: which driver call each step of an operation makes, per dialect.

An operation's `kind` is what the user asked for (`stop`, `resize`, ...). Most kinds are one driver
call. A resize is several, and they differ by dialect:

- Huawei ECS v1 resizes only stopped servers: stop (if running) -> resize -> start (if it was
  running). Each step is a cloud job; each is persisted, so a crash resumes at the right step.
  When the resize fails (its cloud job, or a refusal of the call), a server that was running is
  started again, then the sub-job fails with the resize's own code and message.
- Nova (OpenStack, EasyStack offline): resize -> VERIFY_RESIZE -> confirmResize; when the confirm
  fails (its poll, or a refusal of the call), revertResize returns the server to its old flavor
  and the sub-job fails with the reason.
- EasyStack live resize (asked for, and the server running): one `live_resize` call.
- Huawei BMS: no resize API; refused at plan time by the driver's capabilities.

Steps are indexed; a step whose condition does not hold for a server (e.g. "stop if running" for a
stopped server) is passed over without a call. A compensation step (`on_failure_only`, at the end)
is never on the way of a success: it runs only after a failure of a `compensated` step, so that a
server is not left half-way (stopped, or in VERIFY_RESIZE) by a multi-step action that failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.domain import Action, Provider, ServerStatus
from fleet.drivers.config import Flavour


@dataclass(frozen=True)
class Step:
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
    """Chosen once per server at planning and stored by `name` on its sub-job, so a restart
    resumes the very same steps."""

    name: str
    steps: tuple[Step, ...]
    live: bool = False  # an EasyStack live resize: the driver sends `live_resize`

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


SIMPLE_KINDS: dict[str, Action] = {
    "start": Action.START,
    "stop": Action.STOP,
    "reboot": Action.REBOOT,
    "tag_add": Action.TAG_ADD,
    "tag_remove": Action.TAG_REMOVE,
    "delete": Action.DELETE,
}
KINDS = (*SIMPLE_KINDS, "resize")

_ECS_RESIZE = Recipe(
    "resize/ecs-v1",
    (
        Step(Action.STOP, only_if_running=True),
        Step(Action.RESIZE, compensated=True),
        Step(Action.START, only_if_running=True),
        # appended, so the indexes of sub-jobs planned before it are unchanged
        Step(
            Action.START,
            only_if_running=True,
            on_failure_only=True,
            doing="starting the server again, as it was running before",
            done="the server was started again, as it was running before",
        ),
    ),
)
_NOVA_RESIZE = Recipe(
    "resize/nova",
    (
        Step(Action.RESIZE),
        Step(Action.CONFIRM_RESIZE, compensated=True),
        Step(
            Action.REVERT_RESIZE,
            on_failure_only=True,
            doing="reverting to the old flavor",
            done="reverted to the old flavor",
            code="resize_reverted",
        ),
    ),
)
_LIVE_RESIZE = Recipe("resize/live", (Step(Action.RESIZE),), live=True)

RECIPES: dict[str, Recipe] = {
    **{kind: Recipe(kind, (Step(action),)) for kind, action in SIMPLE_KINDS.items()},
    **{r.name: r for r in (_ECS_RESIZE, _NOVA_RESIZE, _LIVE_RESIZE)},
}


def recipe_for(
    kind: str,
    provider: Provider,
    *,
    flavour: str = Flavour.OPENSTACK,
    live: bool = False,
    status: ServerStatus | None = None,
) -> Recipe:
    """The recipe for `kind` on an endpoint; raises KeyError for an unknown kind."""
    if kind in SIMPLE_KINDS:
        return RECIPES[kind]
    if kind != "resize":
        raise KeyError(kind)
    if provider is Provider.HUAWEI_ECS:
        return _ECS_RESIZE
    if flavour == Flavour.EASYSTACK and live and status is ServerStatus.RUNNING:
        return _LIVE_RESIZE
    return _NOVA_RESIZE


# What a step's action leads to once it succeeded (to recognise "already done" and verify sends).
LEADS_TO: dict[Action, ServerStatus | None] = {
    Action.START: ServerStatus.RUNNING,
    Action.STOP: ServerStatus.STOPPED,
    Action.REBOOT: ServerStatus.RUNNING,
    Action.RESIZE: None,
    Action.CONFIRM_RESIZE: None,
    Action.REVERT_RESIZE: None,
    Action.TAG_ADD: None,
    Action.TAG_REMOVE: None,
    Action.DELETE: ServerStatus.DELETED,
}
