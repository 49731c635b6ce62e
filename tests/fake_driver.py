"""A driver without HTTP, for fast unit tests of admission, the planner and the executor.

It serves a dialect's real declarations (`Capabilities`) over servers held in memory and does
what each call leads to at once: a start leaves the server running, a resize gives it the flavor,
a tag call sets the tags, and so on. It is no proof that a driver speaks its cloud's protocol
(the contract tests against the simulator are); it proves that everything above the drivers reads
the declarations and nothing else.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from fleet.domain import Action, ActionParams, Provider, Selector, ServerRef, ServerStatus
from fleet.drivers.actions import Capabilities, Evidence
from fleet.drivers.base import (
    CreateRequest,
    InstanceAction,
    OutcomeState,
    PollResult,
    Quota,
    ServerOutcome,
    Submission,
    created_selector,
)
from fleet.drivers.errors import NotFound

S = ServerStatus
FLAVORS = {"f-small": "small", "f-large": "large"}  # id -> name


class FakeDriver:
    def __init__(self, endpoint: str, capabilities: Capabilities, servers: Sequence[ServerRef]):
        self._endpoint = endpoint
        self._caps = capabilities
        self.servers = {s.id: s for s in servers}
        self.calls: list[tuple[Action, tuple[str, ...]]] = []
        self._stamp = itertools.count(1)
        # The cloud's clock (a test may put it anywhere against this host's) and the servers'
        # action history as the cloud keeps it; None: the cloud serves no history.
        self.now = datetime(2026, 1, 1, 12, tzinfo=UTC)
        self.history: dict[str, list[InstanceAction]] | None = {}
        self.answered = False  # whether the cloud has answered yet (`cloud_clock`)
        self.creates: list[CreateRequest] = []
        self.server_quota: Quota | None = None

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)

    def record(self, server_id: str, action: str) -> None:
        """The cloud records `action` on the server now (a person, another client, fleet)."""
        if self.history is not None:
            self.history.setdefault(server_id, []).append(
                InstanceAction(action, self.now, f"req-{next(self._stamp)}")
            )

    async def cloud_clock(self) -> datetime | None:
        return self.now if self.answered else None

    async def instance_actions(self, server_id: str) -> Sequence[InstanceAction] | None:
        self.answered = True
        return None if self.history is None else list(self.history.get(server_id, ()))

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def provider(self) -> Provider:
        return Provider.OPENSTACK

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    def max_batch(self, action: Action) -> int:
        return self._caps.spec(action).max_batch

    def check(self, action: Action, params: ActionParams) -> None:
        self._caps.spec(action)

    async def list_servers(self, selector: Selector) -> AsyncIterator[ServerRef]:
        self.answered = True
        for server in list(self.servers.values()):
            if selector.matches(server):
                yield server

    async def get_server(self, server_id: str) -> ServerRef:
        self.answered = True
        if server_id not in self.servers:
            raise NotFound(f"no server {server_id}")
        return self.servers[server_id]

    async def flavors(self) -> frozenset[str]:
        return frozenset(FLAVORS)

    async def flavor_table(self) -> Mapping[str, str]:
        return FLAVORS

    async def submit(self, action: Action, ids: Sequence[str], params: ActionParams) -> Submission:
        spec = self._caps.spec(action)
        self.calls.append((action, tuple(ids)))
        self.answered = True
        for server_id in ids:
            self.servers[server_id] = self._done(self.servers[server_id], action, params)
            if action not in (Action.TAG_ADD, Action.TAG_REMOVE):
                self.record(server_id, spec.recorded_as or action.value)
        done = spec.evidence is Evidence.ANSWER
        return Submission(action, tuple(ids), spec.api_class, done=done, flavor=params.flavor)

    async def poll(self, submission: Submission) -> PollResult:
        return PollResult({i: ServerOutcome(i, OutcomeState.DONE) for i in submission.server_ids})

    async def create(self, request: CreateRequest) -> Submission:
        """Servers appear at once, running, named as a batch API names them."""
        spec = self._caps.spec(Action.CREATE)
        self.creates.append(request)
        self.answered = True
        names = (
            [request.name]
            if request.count == 1
            else [f"{request.name}-{i:04d}" for i in range(1, request.count + 1)]
        )
        ids = []
        for name in names:
            server_id = f"new-{next(self._stamp)}"
            self.servers[server_id] = ServerRef(
                self._endpoint, Provider.OPENSTACK, server_id, name, S.RUNNING,
                flavor=request.flavor, tags=dict(request.tags),
            )  # fmt: skip
            ids.append(server_id)
        return Submission(Action.CREATE, tuple(ids), spec.api_class)

    def list_created(
        self, tag: tuple[str, str], name_prefix: str, since: str | None = None
    ) -> AsyncIterator[ServerRef]:
        return self.list_servers(created_selector(tag, name_prefix))

    async def quota(self) -> Quota | None:
        return self.server_quota

    def _done(self, server: ServerRef, action: Action, params: ActionParams) -> ServerRef:
        stamp = f"t{next(self._stamp)}"
        if action is Action.RESIZE:
            return replace(server, flavor=params.flavor, updated=stamp)
        if action is Action.TAG_ADD:
            return replace(server, tags={**server.tags, **params.tags}, updated=stamp)
        if action is Action.TAG_REMOVE:
            tags = {k: v for k, v in server.tags.items() if k not in params.tags}
            return replace(server, tags=tags, updated=stamp)
        spec = self._caps.spec(action)
        status = spec.leads_to or server.status
        return replace(server, status=status, updated=stamp)
