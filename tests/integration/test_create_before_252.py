"""Creates on a Nova cloud below microversion 2.52 (a world whose EasyStack advertises 2.25):
such a cloud refuses `tags` in a create's body (400, as upstream's request schema has none before
2.52), so the identity goes in server metadata, and after a lost answer or a dropped connection
the operation's servers are found again by their name and that metadata, never created twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet.drivers.base import CreateRequest
from jobs.states import OperationState
from tests.integration.test_create_on_simulator import create_params, create_posts, start_create
from tests.integration.test_operations_on_simulator import SimControl, running, wait_terminal

OLD_NOVA = "tag_api = false\n[generate]\necs = 2\nbms = 2\nopenstack = 4\n"


async def made_by(sim: SimControl, op_id: str) -> list[dict[str, Any]]:
    return [s for s in (await sim.servers()).values() if s["metadata"].get("fleet-op") == op_id]


async def test_create_below_252_writes_the_identity_as_metadata(tmp_path: Path) -> None:
    world = tmp_path / "world.toml"
    world.write_text(OLD_NOVA)
    async with running(tmp_path, world=world) as (fleet, sim):
        op_id = await start_create(fleet, sim, "easystack-sim", 5, name="old-{n}")
        view = await wait_terminal(fleet, op_id, 60)
        assert view.state is OperationState.SUCCEEDED, view
        servers = await made_by(sim, op_id)
        assert sorted(s["name"] for s in servers) == [f"old-{n}" for n in range(1, 6)]
        assert all(s["metadata"]["expires-at"] == "2030-01-01" for s in servers)
        posts = await create_posts(sim, "easystack-sim")
        assert len(posts) == 5
        assert all(p["microversion"] == "2.25" for p in posts)


async def test_below_252_a_lost_answer_never_creates_twice(tmp_path: Path) -> None:
    world = tmp_path / "world.toml"
    world.write_text(OLD_NOVA)
    async with running(tmp_path, world=world) as (fleet, sim):
        need = await create_params(sim, "easystack-sim", 1, "x")
        # another operation's server and a server of someone else under the same names: not ours
        await fleet.drivers["easystack-sim"].create(
            CreateRequest(
                "db-3", 1, need["flavor"], need["image"], need["network"], {"fleet-op": "other"}
            )
        )
        await sim.fault({"kind": "lost_answer", "match": "openstack:create", "count": 2})
        await sim.fault({"kind": "drop", "match": "openstack:create", "count": 1})
        op_id = await start_create(fleet, sim, "easystack-sim", 8, name="db-{n}")
        view = await wait_terminal(fleet, op_id, 60)
        assert view.state is OperationState.SUCCEEDED, view
        servers = await made_by(sim, op_id)
        assert sorted(s["name"] for s in servers) == sorted(f"db-{n}" for n in range(1, 9))
        fired = {f["kind"]: f["fired"] for f in await sim.faults()}
        assert fired == {"lost_answer": 2, "drop": 1}  # answers were lost, one server per name
        assert len(await create_posts(sim, "easystack-sim")) >= 8
