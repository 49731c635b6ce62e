"""Instance actions: the world's record of everything performed on a server, as Nova keeps it.

Nova records an *instance action* for each lifecycle operation a server undergoes (ECS API
reference §6.13, upstream Nova's `os-instance-actions`): the action's Nova name (`start`, `stop`,
`reboot`, `resize`, `confirmResize`, `revertResize`, `delete`, `restore`, `lock`, `unlock`, ...),
the `request_id` of the call that caused it, the user and project, its `start_time` in the cloud's
clock, a `message` (null, or "Error" when one of its events failed) and its events (e.g.
`compute_stop_instance` with start/finish times and result `Success`/`Error`). Tag changes are not
instance actions in Nova, and neither is anything refused before it was performed.

The world records them itself (`World.begin` for every status-changing action, `World.record` for
the instant ones such as lock), so every path records alike: the Nova action routes of both
mounts, the Huawei ECS/BMS v1 batch jobs and the `/_sim` control plane (a person in the console).
Who performed an action is the `Actor` of the current request, set by `core.admit()` for every
dialect call (so a call whose answer is lost after it acted is recorded, and a call held and
dropped before acting is not) and by the control plane for its own changes. Without an actor (a
test changing the world directly) the action gets a fresh `req-...` id and the project's user.

EasyStack's `live_resize` is not an upstream Nova action; the simulator records it as
`live_resize` (its own choice, no document names it).
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

# The world's transition names -> the action name Nova records.
ACTION_NAMES: dict[str, str] = {
    "start": "start",
    "stop": "stop",
    "stop_hard": "stop",
    "reboot": "reboot",
    "reboot_hard": "reboot",
    "resize": "resize",
    "confirm_resize": "confirmResize",
    "revert_resize": "revertResize",
    "live_resize": "live_resize",
    "delete": "delete",
    "restore": "restore",
    "create": "create",
}

# Nova action name -> the compute event it carries (upstream names; lock/unlock have none).
EVENT_NAMES: dict[str, str] = {
    "start": "compute_start_instance",
    "stop": "compute_stop_instance",
    "reboot": "compute_reboot_instance",
    "resize": "compute_resize_instance",
    "confirmResize": "compute_confirm_resize",
    "revertResize": "compute_revert_resize",
    "live_resize": "compute_live_resize_instance",
    "delete": "compute_terminate_instance",
    "restore": "compute_restore_instance",
    "create": "compute__do_build_and_run_instance",
}


@dataclass(frozen=True)
class Actor:
    """Who performs what the current request does: its request id and (optionally) user."""

    request_id: str
    user_id: str | None = None
    source: str = ""  # the dialect of the call, or "console" for /_sim


_CURRENT: ContextVar[Actor | None] = ContextVar("sim_actor", default=None)


def acting(actor: Actor | None) -> None:
    """Make `actor` the performer of whatever the current request does next."""
    _CURRENT.set(actor)


def current_actor() -> Actor | None:
    return _CURRENT.get()


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


@dataclass
class ActionEvent:
    event: str
    start_time: datetime
    finish_time: datetime | None = None
    result: str | None = None  # None while running, then "Success" or "Error"
    traceback: str | None = None


@dataclass
class InstanceAction:
    """One recorded action on one server (fields as Nova's `instanceAction`)."""

    action: str
    server_id: str
    project_id: str
    request_id: str
    user_id: str
    start_time: datetime
    source: str = ""
    message: str | None = None
    events: list[ActionEvent] = field(default_factory=list)

    @property
    def updated_at(self) -> datetime:
        """When the record last changed: its start, or its latest event start or finish."""
        moments = [self.start_time]
        for e in self.events:
            moments.append(e.start_time)
            if e.finish_time is not None:
                moments.append(e.finish_time)
        return max(moments)

    def finish(self, when: datetime, error: str | None = None) -> None:
        """End the running event at `when`: Success, or Error with `error` as its traceback."""
        for event in self.events:
            if event.finish_time is None:
                event.finish_time = when
                event.result = "Error" if error is not None else "Success"
                event.traceback = error
        if error is not None:
            self.message = "Error"


@dataclass
class ActionLog:
    """Every server's instance actions, oldest first; kept after the server is purged."""

    by_server: dict[str, list[InstanceAction]] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # project id -> its user's id

    def record(
        self,
        server_id: str,
        project_id: str,
        action: str,
        when: datetime,
        *,
        finished: bool = False,
    ) -> InstanceAction:
        """Record `action` (a Nova name or a world transition name) by the current actor."""
        name = ACTION_NAMES.get(action, action)
        actor = current_actor()
        record = InstanceAction(
            action=name,
            server_id=server_id,
            project_id=project_id,
            request_id=actor.request_id if actor is not None else new_request_id(),
            user_id=(actor.user_id if actor is not None else None)
            or self.users.get(project_id, ""),
            start_time=when,
            source=actor.source if actor is not None else "",
        )
        event = EVENT_NAMES.get(name)
        if event is not None:
            record.events.append(ActionEvent(event=event, start_time=when))
        if finished:
            record.finish(when)
        self.by_server.setdefault(server_id, []).append(record)
        return record

    def of(self, server_id: str) -> list[InstanceAction]:
        """The server's actions, oldest first (empty if none)."""
        return list(self.by_server.get(server_id, ()))

    def find(self, server_id: str, request_id: str) -> InstanceAction | None:
        """The server's action of `request_id` (the latest, if one request did several)."""
        for record in reversed(self.by_server.get(server_id, ())):
            if record.request_id == request_id:
                return record
        return None
