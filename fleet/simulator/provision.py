"""What a server is created from, and the world-side part of creating one (all three dialects).

The world's provisioning catalog (`catalog.Catalog`) holds what a create request must name and the seeds
say must exist: images (ECS §5.1.1 `imageRef`, seed 003 `imageRef`, Nova `imageRef`), VPCs and
their subnets (Huawei `vpcid` and `nics[].subnet_id`: "the ID of the subnet created in the VPC
specified by vpcid"), networks (Nova `networks[].uuid`) and availability zones. The ids are fixed
per world (derived from the world's seed, see `default_catalog`) and served by
`GET /_sim/endpoints` under `create`, so scripts never guess them. The quota is a number of
servers per kind (a world file's `[quotas]`, e.g. `ecs = 600`); by default each kind has room for
1,000 servers more than the world starts with, and at least `worldgen.DEFAULT_QUOTAS`.

`create_server` adds one server in BUILD (`vm_state` building, task `spawning`, power 0, as
digest Table A-1/A-2 list for a server being created) and starts its `create` transition: it
settles ACTIVE after `World.durations["create"]` simulated seconds (30 by default, within the
60 the issue allows), or ERROR with a `fault` when the `create_fail` fault picked it (see
`faults`). The instance action is `create` with the upstream event
`compute__do_build_and_run_instance`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fleet.simulator.catalog import Catalog
from fleet.simulator.world import Server, World

ERROR_STATE = ("ERROR", "error", 0)
BUILD_STATE = ("BUILD", "building", 0)


def live_count(world: World, kind: str, project_id: str) -> int:
    return sum(
        1
        for s in world.servers.values()
        if s.kind == kind and s.project_id == project_id and s.deleted_at is None
    )


def room(world: World, catalog: Catalog, kind: str, project_id: str) -> tuple[int, int]:
    """(used, quota) of `kind` servers in the project."""
    return live_count(world, kind, project_id), catalog.quotas.get(kind, 10**9)


def batch_names(name: str, count: int) -> list[str]:
    """Huawei batch names: `name` alone for one server, else `name-0001`, `name-0002`, ..."""
    if count == 1:
        return [name]
    return [f"{name}-{i:04d}" for i in range(1, count + 1)]


@dataclass(frozen=True)
class NewServer:
    """What one create request decided about one server."""

    name: str
    kind: str
    project_id: str
    flavor_id: str
    image_id: str
    availability_zone: str
    tags: dict[str, str]
    fail: tuple[str, str] | None = None  # (code, reason): ends in ERROR
    metadata: tuple[tuple[str, str], ...] = ()  # Nova `metadata` of the create request


def create_server(world: World, spec: NewServer) -> Server:
    """Add the server in BUILD and start its `create` transition (ACTIVE, or ERROR on a fault)."""
    now = world.clock.now()
    server = Server(
        id=str(uuid.uuid4()),
        name=spec.name,
        kind=spec.kind,
        project_id=spec.project_id,
        status=BUILD_STATE[0],
        vm_state=BUILD_STATE[1],
        power_state=BUILD_STATE[2],
        flavor_id=spec.flavor_id,
        created=now,
        updated=now,
        tags=dict(spec.tags),
        metadata=dict(spec.metadata),
        image_id=spec.image_id,
        availability_zone=spec.availability_zone,
    )
    world.servers[server.id] = server
    end = ERROR_STATE if spec.fail is not None else ("ACTIVE", "active", 1)
    t = world.begin(server, "create", interim=("BUILD", "spawning"), end=end)
    t.before = None  # a failed create does not go back: it ends in ERROR
    t.fail = spec.fail
    return server
