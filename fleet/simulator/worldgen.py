"""Building a world: generated from a seed, or read from a TOML world file.

A world file (all keys optional) looks like::

    seed = 7
    speed = 10.0
    tag_api = true        # EasyStack serves Nova's tag API (false: it advertises 2.25, no tags)
    instance_actions = true  # EasyStack serves os-instance-actions (false: 404, as a cloud
                             # that does not expose the server's action history)
    [generate]            # how many servers of each kind to generate
    ecs = 120
    bms = 40
    openstack = 120
    [durations]           # simulated seconds per action (see world.DEFAULT_DURATIONS)
    stop = 5
    [[servers]]           # explicit servers, in addition to generated ones
    name = "db-1"
    kind = "ecs"          # ecs | bms | openstack
    status = "ACTIVE"     # ACTIVE | SHUTOFF
    flavor = "s6.large.2"
    tags = { env = "prod" }
    [limits."huawei-bms:action"]
    limit = 50
    period = 60
    unit = "requests"     # requests | servers
    [quotas]              # most live servers per kind (default: DEFAULT_QUOTAS, or 1,000
                          # more than generated if that is more)
    ecs = 600
    [[faults]]            # same shape as POST /_sim/faults
    kind = "error_burst"
    match = "huawei-ecs:*"
    count = 3
"""

from __future__ import annotations

import random
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fleet.simulator.catalog import default_catalog
from fleet.simulator.world import (
    BMS,
    ECS,
    KINDS,
    OPENSTACK,
    RUNNING,
    STOPPED,
    Flavor,
    Server,
    SimClock,
    World,
)

FLAVORS = [
    Flavor("s6.small.1", "s6.small.1", 1, 1024, 40, ECS),
    Flavor("s6.medium.2", "s6.medium.2", 1, 2048, 40, ECS),
    Flavor("s6.large.2", "s6.large.2", 2, 4096, 40, ECS),
    Flavor("c6.xlarge.2", "c6.xlarge.2", 4, 8192, 40, ECS),
    Flavor("physical.s4.medium", "physical.s4.medium", 32, 196608, 1600, BMS),
    Flavor("physical.s4.large", "physical.s4.large", 64, 393216, 3200, BMS),
    Flavor("1", "m1.small", 1, 2048, 20, OPENSTACK),
    Flavor("2", "m1.medium", 2, 4096, 40, OPENSTACK),
    Flavor("3", "m1.large", 4, 8192, 80, OPENSTACK),
    Flavor("214", "ecs.c2.large", 8, 16384, 80, OPENSTACK),
]

# Most live servers per kind unless a world file says otherwise (each at least 1,000 more than
# the world starts with): ECS the `maxTotalInstances` of seed 001 §5.7.1's example, EasyStack
# the 10,000 its `GET /limits` has always shown.
DEFAULT_QUOTAS = {ECS: 2048, BMS: 1000, OPENSTACK: 10000}

_ROLES = ("web", "api", "db", "cache", "batch", "ci")
_ENVS = ("dev", "test", "staging", "prod")
_TEAMS = ("alpha", "bravo", "charlie")


@dataclass
class WorldSpec:
    """Everything a world file can say, with defaults."""

    seed: int = 1
    speed: float = 1.0
    counts: dict[str, int] = field(default_factory=lambda: {ECS: 120, BMS: 40, OPENSTACK: 120})
    durations: dict[str, float] = field(default_factory=dict)
    servers: list[dict[str, object]] = field(default_factory=list)
    limits: dict[str, dict[str, object]] = field(default_factory=dict)
    faults: list[dict[str, object]] = field(default_factory=list)
    tag_api: bool = True  # the EasyStack endpoint serves the tag API
    instance_actions: bool = True  # the EasyStack endpoint serves os-instance-actions
    quotas: dict[str, int] = field(default_factory=dict)  # kind -> most live servers


def load_spec(
    path: str | Path | None, *, seed: int | None = None, speed: float | None = None
) -> WorldSpec:
    """Read a world file (or none); explicit `seed`/`speed` arguments win over the file."""
    spec = WorldSpec()
    if path is not None:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        spec = _spec_from(data)
    if seed is not None:
        spec.seed = seed
    if speed is not None:
        spec.speed = speed
    return spec


def _spec_from(data: dict[str, object]) -> WorldSpec:
    spec = WorldSpec()
    if "seed" in data:
        spec.seed = int(str(data["seed"]))
    if "speed" in data:
        spec.speed = float(str(data["speed"]))
    for flag in ("tag_api", "instance_actions"):
        if flag in data:
            if not isinstance(data[flag], bool):
                raise ValueError(f"{flag}: must be true or false")
            setattr(spec, flag, data[flag])
    gen = data.get("generate")
    if isinstance(gen, dict):
        unknown = set(gen) - set(KINDS)
        if unknown:
            raise ValueError(f"generate: unknown server kinds {sorted(unknown)}; use {list(KINDS)}")
        spec.counts = {k: int(gen.get(k, 0)) for k in KINDS}
    for key, target in (("durations", spec.durations), ("limits", spec.limits)):
        value = data.get(key)
        if isinstance(value, dict):
            target.update(value)
    spec.quotas = _quotas(data.get("quotas"))
    for key, items in (("servers", spec.servers), ("faults", spec.faults)):
        value = data.get(key)
        if isinstance(value, list):
            items.extend(v for v in value if isinstance(v, dict))
    return spec


def _quotas(value: object) -> dict[str, int]:
    """A world file's `[quotas]`: most live servers per kind."""
    if value is None:
        return {}
    if not isinstance(value, dict) or set(value) - set(KINDS):
        raise ValueError(f"quotas: must map server kinds {list(KINDS)} to numbers")
    bad = [k for k, v in value.items() if not isinstance(v, int) or isinstance(v, bool) or v < 0]
    if bad:
        raise ValueError(f"quotas.{bad[0]}: must be a whole number of servers")
    return {str(k): int(v) for k, v in value.items()}


def build_world(spec: WorldSpec) -> World:
    rng = random.Random(spec.seed)
    world = World(
        clock=SimClock(spec.speed),
        huawei_project_id=_hex(rng, 32),
        openstack_project_id=_hex(rng, 32),
        flavors={f.id: f for f in FLAVORS},
        openstack_tag_api=spec.tag_api,
        openstack_instance_actions=spec.instance_actions,
    )
    world.durations.update({k: float(v) for k, v in spec.durations.items()})
    for kind in KINDS:
        for i in range(spec.counts.get(kind, 0)):
            _add(world, _generated(rng, kind, i + 1))
    for item in spec.servers:
        _add(world, dict(item))
    world.catalog = default_catalog(spec.seed)
    for kind in KINDS:
        have = sum(1 for s in world.servers.values() if s.kind == kind)
        default = max(DEFAULT_QUOTAS[kind], have + 1000)
        world.catalog.quotas[kind] = spec.quotas.get(kind, default)
    return world


def _generated(rng: random.Random, kind: str, n: int) -> dict[str, object]:
    role, env = rng.choice(_ROLES), rng.choice(_ENVS)
    flavors = [f.id for f in FLAVORS if f.kind == kind]
    tags: dict[str, str] = {"env": env, "team": rng.choice(_TEAMS), "role": role}
    if rng.random() < 0.05:
        tags["fleet-exclude"] = "true"
    prefix = {ECS: "ecs", BMS: "bms", OPENSTACK: "es"}[kind]
    return {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "name": f"{prefix}-{env}-{role}-{n:03d}",
        "kind": kind,
        "status": "SHUTOFF" if rng.random() < 0.2 else "ACTIVE",
        "flavor": flavors[0] if kind == BMS else rng.choice(flavors[:3]),
        "tags": tags,
    }


def _add(world: World, item: dict[str, object]) -> None:
    kind = str(item.get("kind", ECS))
    if kind not in KINDS:
        raise ValueError(f"servers: kind must be one of {list(KINDS)}, not {kind!r}")
    status = str(item.get("status", "ACTIVE"))
    if status not in ("ACTIVE", "SHUTOFF"):
        raise ValueError(f"servers: status must be ACTIVE or SHUTOFF, not {status!r}")
    flavor = str(item.get("flavor") or next(f.id for f in FLAVORS if f.kind == kind))
    if flavor not in world.flavors:
        raise ValueError(f"servers: unknown flavor {flavor!r}")
    settled = RUNNING if status == "ACTIVE" else STOPPED
    raw_tags = item.get("tags") or {}
    tags = {str(k): str(v) for k, v in raw_tags.items()} if isinstance(raw_tags, dict) else {}
    now = world.clock.now()
    server = Server(
        id=str(item.get("id") or uuid.uuid4()),
        name=str(item.get("name") or f"{kind}-{len(world.servers) + 1:04d}"),
        kind=kind,
        project_id=world.openstack_project_id if kind == OPENSTACK else world.huawei_project_id,
        status=settled[0],
        vm_state=settled[1],
        power_state=settled[2],
        flavor_id=flavor,
        created=now,
        updated=now,
        tags=tags,
        locked=bool(item.get("locked", False)),
    )
    world.servers[server.id] = server


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))
