"""The cloud vocabulary every part of fleet shares: providers, actions, statuses, selectors, servers.

These are plain frozen values with no I/O, so the planner, the executor, the API and the drivers can
all speak about servers without depending on one another. Vendor words (ACTIVE, SHUTOFF,
`powering-off`, ...) never leave the drivers: they are normalised into `ServerStatus` here.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from types import MappingProxyType

EXPIRY_TAG = "expires-at"
"""The tag whose day (`YYYY-MM-DD`) tells the clean-up policies a server has expired (their
default `expiry_tag`); a create or a tag_add that sets it is held to a day at admission."""


def tag_day(text: str) -> date | None:
    """A day a tag's value names (`2026-12-31`), as the policies read it; None if it names none."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


class Provider(StrEnum):
    """Which driver speaks to an endpoint."""

    HUAWEI_ECS = "huawei-ecs"
    HUAWEI_BMS = "huawei-bms"
    OPENSTACK = "openstack"  # plain OpenStack Nova, or EasyStack with its quirks switched on


class Action(StrEnum):
    """What fleet can ask a cloud to do to a server."""

    START = "start"
    STOP = "stop"
    REBOOT = "reboot"
    RESIZE = "resize"
    CONFIRM_RESIZE = "confirm_resize"
    REVERT_RESIZE = "revert_resize"
    TAG_ADD = "tag_add"
    TAG_REMOVE = "tag_remove"
    DELETE = "delete"
    CREATE = "create"


class PowerType(StrEnum):
    """How forcefully a stop or reboot is done (the vendors' SOFT/HARD `type`)."""

    SOFT = "SOFT"
    HARD = "HARD"


class ServerStatus(StrEnum):
    """The one internal status vocabulary (api-digest 2.5), vendor status and task state combined.

    A server whose vendor status is ACTIVE but whose task state is `powering-off` is STOPPING here:
    the executor only cares whether the server has settled and where.
    """

    BUILDING = "building"
    RUNNING = "running"
    STOPPED = "stopped"
    STARTING = "starting"
    STOPPING = "stopping"
    REBOOTING = "rebooting"
    RESIZING = "resizing"
    VERIFY_RESIZE = "verify_resize"
    BUSY = "busy"  # migrating, rebuilding, shelving...: some other operation is in progress
    PAUSED = "paused"
    SUSPENDED = "suspended"
    SHELVED = "shelved"
    ERROR = "error"
    DELETING = "deleting"
    DELETED = "deleted"
    UNKNOWN = "unknown"


SETTLED_STATUSES: frozenset[ServerStatus] = frozenset(
    {
        ServerStatus.RUNNING,
        ServerStatus.STOPPED,
        ServerStatus.VERIFY_RESIZE,
        ServerStatus.PAUSED,
        ServerStatus.SUSPENDED,
        ServerStatus.SHELVED,
        ServerStatus.ERROR,
        ServerStatus.DELETED,
    }
)


def _freeze_map(data: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(data or {}))


def _freeze_multi(data: Mapping[str, Iterable[str]] | None) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({k: tuple(v) for k, v in (data or {}).items()})


# --- tags -----------------------------------------------------------------------------------------
# fleet's tags are 2D (key, value) pairs, as on the Huawei v1 API. Nova dialects store 1D strings;
# a 2D tag is written there as "key=value", and a bare "key" is the pair (key, "").


def tag_to_1d(key: str, value: str) -> str:
    """`("env", "prod")` -> `"env=prod"`; `("k", "")` -> `"k"`."""
    return f"{key}={value}" if value else key


def tag_from_1d(tag: str) -> tuple[str, str]:
    """`"env=prod"` -> `("env", "prod")`; `"k"` -> `("k", "")`; splits at the first `=` only."""
    key, sep, value = tag.partition("=")
    return (key, value) if sep else (tag, "")


def tags_from_1d(tags: Iterable[str]) -> dict[str, str]:
    """A Nova tag list as a key -> value mapping (a later duplicate key wins, as a dict would)."""
    return dict(tag_from_1d(t) for t in tags)


# --- servers ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerRef:
    """One server as a driver saw it, normalised. `raw_status`/`task_state` keep the vendor words."""

    endpoint: str
    provider: Provider
    id: str
    name: str
    status: ServerStatus
    raw_status: str = ""
    task_state: str | None = None
    flavor: str | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    locked: bool = False
    fault: str | None = None
    # The cloud's own last-change stamp: a server whose stamp moved since planning was touched
    # (how a crash-interrupted reboot is recognised without sending it twice).
    updated: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _freeze_map(self.tags))

    def __hash__(self) -> int:
        return hash((self.endpoint, self.id, self.status, self.task_state))

    @property
    def settled(self) -> bool:
        """No operation is in progress on the server."""
        return self.status in SETTLED_STATUSES and not self.task_state


# The architecture calls the result of `get_server` a snapshot: it is the same value.
ServerSnapshot = ServerRef


@dataclass(frozen=True)
class Selector:
    """Which servers an operation targets. Every given criterion must hold (AND).

    - `ids`: only these servers.
    - `tags_all`: the server has every key with exactly that value.
    - `tags_any`: for every key, the server has it with one of the values (an empty list: any value).
    - `tags_none`: for no key does the server have it with one of the values (empty: the key at all).
    - `name_pattern`: a shell glob on the name (`web-*`), case-sensitive.
    - `statuses`: the normalised status is one of these.
    """

    ids: frozenset[str] = frozenset()
    tags_all: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    tags_any: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    tags_none: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    name_pattern: str | None = None
    statuses: frozenset[ServerStatus] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", frozenset(self.ids))
        object.__setattr__(self, "statuses", frozenset(self.statuses))
        object.__setattr__(self, "tags_all", _freeze_map(self.tags_all))
        object.__setattr__(self, "tags_any", _freeze_multi(self.tags_any))
        object.__setattr__(self, "tags_none", _freeze_multi(self.tags_none))

    @property
    def has_tag_criteria(self) -> bool:
        return bool(self.tags_all or self.tags_any or self.tags_none)

    def matches_tags(self, tags: Mapping[str, str]) -> bool:
        for key, value in self.tags_all.items():
            if tags.get(key) != value:
                return False
        for key, values in self.tags_any.items():
            if key not in tags or (values and tags[key] not in values):
                return False
        for key, values in self.tags_none.items():
            if key in tags and (not values or tags[key] in values):
                return False
        return True

    def matches(self, server: ServerRef) -> bool:
        """The authoritative filter: drivers filter server-side where they can, then call this."""
        if self.ids and server.id not in self.ids:
            return False
        if self.statuses and server.status not in self.statuses:
            return False
        if self.name_pattern is not None and not fnmatch.fnmatchcase(
            server.name, self.name_pattern
        ):
            return False
        return self.matches_tags(server.tags)


@dataclass(frozen=True)
class CreateParams:
    """What a create asks for on each targeted endpoint (`fleet.engine.opspec` parses it).

    - `count` servers, named from the template `name` (`web-{n:03d}`, `n` from 1);
    - `image`, `network` (Huawei: the subnet id, with `vpc`; Nova: the network id) and
      `availability_zone` as the cloud names them; the flavor is `ActionParams.flavor` and the
      tags `ActionParams.tags`;
    - `key_name`, and `admin_password` as a secret reference (`env:NAME` or `file:PATH`, read
      when the call is sent, never stored).
    """

    count: int
    name: str
    image: str
    network: str
    vpc: str | None = None
    availability_zone: str | None = None
    key_name: str | None = None
    admin_password: str | None = None  # a reference, never the secret


@dataclass(frozen=True)
class ActionParams:
    """Parameters of an action; each action reads only the fields that concern it.

    - `type`: SOFT/HARD for stop and reboot.
    - `flavor`: the target flavor id of a resize; `live`: EasyStack online resize; `dry_run`:
      Huawei v1 resize check only.
    - `tags`: tag_add adds these pairs; tag_remove removes them (a "" value removes the key whatever
      its value).
    - `delete_publicip` / `delete_volume`: Huawei v1 delete options (None: the cloud's default).
    - `create`: what a create asks for (`CreateParams`).
    """

    type: PowerType = PowerType.SOFT
    flavor: str | None = None
    live: bool = False
    dry_run: bool = False
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    delete_publicip: bool | None = None
    delete_volume: bool | None = None
    create: CreateParams | None = None  # a create's request (None for every other action)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _freeze_map(self.tags))

    def __hash__(self) -> int:
        return hash(
            (
                self.type,
                self.flavor,
                self.live,
                self.dry_run,
                tuple(sorted(self.tags.items())),
                self.delete_publicip,
                self.delete_volume,
                self.create,
            )
        )
