"""Schedule mode: a policy that stops (or starts) the servers tagged `fleet-schedule=<name>` whose
schedule says they should be stopped (or running) at the slot, as Cloud Custodian's offhours and
onhours filters do for its `offhours` tag. A pair of policies of this mode, one `stop` and one
`start`, on a cron of `* * * * *` (or `*/5 ...`), keeps every tagged server on its schedule.

The desired state is re-read at every slot (level, not edge): a tagged server started by hand
inside its stopped time is stopped again at the next slot. The policy's tag rules still apply, so
`fleet-snooze-until=YYYY-MM-DD` or the opt-out tag keep a server out of its schedule for a while.

Per server, with the policy's own selector narrowing the listing:

- no `fleet-schedule` tag: not this policy's server; it is not even counted;
- a name no schedule has: left alone, reported `unknown schedule 'x' (fleet-schedule)` in the
  fire's details and the preview;
- the schedule wants the other state now: left alone (`schedule office: running now`);
- already where the schedule wants it: left alone, so a slot with nothing to change creates no
  operation (`already stopped`); a server in any other state (starting, error...) waits for a
  later slot;
- otherwise it is acted on, unless opt-out or snooze say no.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

from fleet.domain import ServerRef, ServerStatus
from fleet.policies.model import Policy
from fleet.policies.periods import Desired, ServerSchedule
from fleet.policies.tags import verdict
from fleet.policies.targets import Considered, Evaluation, Inventory, action_params, list_targets

SCHEDULE_TAG = "fleet-schedule"
WANTED = {"stop": Desired.STOPPED, "start": Desired.RUNNING}
FROM = {Desired.STOPPED: ServerStatus.RUNNING, Desired.RUNNING: ServerStatus.STOPPED}


def unknown_reason(name: str) -> str:
    return f"unknown schedule {name!r} ({SCHEDULE_TAG})"


def schedule_verdict(
    policy: Policy,
    server: ServerRef,
    at: datetime,
    day: date,
    book: Mapping[str, ServerSchedule],
) -> tuple[bool, str]:
    """Act on this tagged server at instant `at`, or why not."""
    name = server.tags.get(SCHEDULE_TAG, "").strip()
    schedule = book.get(name)
    if schedule is None:
        return False, unknown_reason(name)
    wanted = WANTED[policy.action]
    state = schedule.state_at(at)
    if state is not wanted:
        return False, f"schedule {name}: {state.value} now"
    if server.status is not FROM[wanted]:
        if server.status.value == wanted.value:
            return False, f"already {wanted.value}"
        return False, f"{server.status.value} now: left for a later slot"
    v = verdict(policy, server, day)
    return v.act, v.reason or f"schedule {name}: {wanted.value} now"


async def evaluate_schedule(
    policy: Policy,
    inventory: Inventory,
    at: datetime,
    day: date,
    book: Mapping[str, ServerSchedule],
) -> Evaluation:
    considered: list[Considered] = []
    async for server in list_targets(policy, inventory):
        if SCHEDULE_TAG not in server.tags:
            continue
        act, reason = schedule_verdict(policy, server, at, day, book)
        caps = inventory[server.endpoint].capabilities
        considered.append(Considered.of(server, act, reason, policy, caps))
    return Evaluation(tuple(considered), action_params(policy, day))
