"""The world's provisioning catalog: images, VPCs/subnets, networks, zones and quotas.

See `provision` for where each comes from in the seeds and how a create uses it.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field


@dataclass
class Catalog:
    """Images, VPCs/subnets, networks and zones a create may name; quotas per server kind."""

    images: dict[str, str] = field(default_factory=dict)  # image id -> name
    subnets: dict[str, str] = field(default_factory=dict)  # Huawei subnet id -> its VPC id
    networks: dict[str, str] = field(default_factory=dict)  # Nova network id -> name
    zones: tuple[str, ...] = ("az1",)
    quotas: dict[str, int] = field(default_factory=dict)  # kind -> most live servers

    @property
    def vpcs(self) -> set[str]:
        return set(self.subnets.values())


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def default_catalog(seed: int) -> Catalog:
    """Two images, one VPC with two subnets, two Nova networks, zone `az1` (ids from `seed`)."""
    rng = random.Random(f"catalog-{seed}")
    vpc = _uuid(rng)
    return Catalog(
        images={_uuid(rng): "CentOS 7.9 64bit", _uuid(rng): "Ubuntu 22.04 server 64bit"},
        subnets={_uuid(rng): vpc, _uuid(rng): vpc},
        networks={_uuid(rng): "private", _uuid(rng): "shared"},
    )
