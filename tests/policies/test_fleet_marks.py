"""Marks on a dialect without a tag API: the endpoint's driver says it cannot add a tag
(`check` raises Unsupported), so a mark policy's fire keeps the mark in fleet's table instead of
adding a tag, and a clean-up policy reads it from there. Real engine and database (SQLite and
PostgreSQL); the cloud is the fake inventory, one endpoint with tags ("ecs"), one without ("es").
"""

from __future__ import annotations

from typing import Any

from fleet.policies.records import FireStatus
from jobs.operations import Operations
from jobs.records import OperationView
from jobs.types import JSONObject
from tests.policies.conftest import Env
from tests.policies.fakes import utc

MARK: dict[str, Any] = {
    "name": "mark-sandbox", "cron": "0 6 * * *", "timezone": "UTC", "mode": "mark",
    "mark": {"op": "delete", "days": 14}, "targets": {"tags_all": {"env": "sandbox"}},
}  # fmt: skip
CLEANUP: dict[str, Any] = {
    "name": "cleanup", "cron": "30 2 * * *", "timezone": "UTC", "mode": "cleanup",
    "action": "delete", "allow_delete": True, "guard": {"max_servers": 10, "max_percent": 100},
}  # fmt: skip


def sandbox(env: Env) -> None:
    """On each endpoint: `-a` unmarked, `-b` marked (on "es" at its creation), `-prod` not a
    target."""
    env.cloud.no_tags.add("es")
    for endpoint in ("ecs", "es"):
        env.cloud.add(endpoint, f"{endpoint}-a", tags={"env": "sandbox"})
        marked = {"env": "sandbox", "fleet-op": "delete.2026-03-05"}
        env.cloud.add(endpoint, f"{endpoint}-b", tags=marked)
        env.cloud.add(endpoint, f"{endpoint}-prod", tags={"env": "prod"})


async def fired_operation(env: Env, policy_id: str) -> OperationView:
    fire = (await env.fires(policy_id))[-1]
    assert fire.status is FireStatus.FIRED and fire.operation_id is not None, fire
    return await env.operations.get(fire.operation_id)


def preview_servers(preview: JSONObject) -> dict[str, dict[str, Any]]:
    targets = preview["targets"]
    assert isinstance(targets, dict) and isinstance(targets["servers"], list)
    return {str(s["server_id"]): s for s in targets["servers"] if isinstance(s, dict)}


async def ops_of(env: Env) -> list[OperationView]:
    assert isinstance(env.operations, Operations)
    return list((await env.operations.list(limit=1000)).items)


async def test_the_mark_is_kept_by_fleet_where_the_dialect_has_no_tag_api(env: Env) -> None:
    sandbox(env)
    await env.service.create_policy(MARK, by="admin")
    await env.tick_at(utc(2026, 3, 1, 6))
    [fire] = await env.fires("mark-sandbox")
    assert fire.status is FireStatus.FIRED and fire.operation_id is not None
    [op] = await ops_of(env)
    assert op.operation.kind == "tag_add"
    assert op.operation.params["tags"] == {"fleet-op": "delete.2026-03-15"}
    assert op.operation.selector["endpoints"] == ["ecs"]  # "es" cannot take a tag
    assert op.operation.selector["ids"] == ["ecs-a"]  # "ecs-b" is marked already
    assert await env.store.marks_on("es") == {"es-a": {"fleet-op": "delete.2026-03-15"}}
    assert await env.store.marks_on("ecs") == {}
    assert fire.details["acting"] == 2 and fire.details["marks_kept_by_fleet"] == 1

    # the next day the server fleet marked keeps its mark (it is not re-dated), as a tag would
    await env.tick_at(utc(2026, 3, 2, 6))
    assert await env.store.marks_on("es") == {"es-a": {"fleet-op": "delete.2026-03-15"}}
    servers = preview_servers((await env.service.preview("mark-sandbox")).to_json())
    kept = {i: (s["act"], s["mark_kept"], s["reason"]) for i, s in servers.items()}
    assert kept["es-a"] == (False, "fleet", "already marked (fleet-op=delete.2026-03-15)")
    assert kept["es-b"] == (False, "fleet", "already marked (fleet-op=delete.2026-03-05)")
    assert kept["ecs-b"] == (False, "tag", "already marked (fleet-op=delete.2026-03-05)")
    assert kept["ecs-a"][:2] == (True, "tag")  # nothing runs the fake's operations


async def test_a_fire_with_only_fleet_kept_marks_creates_no_operation(env: Env) -> None:
    sandbox(env)
    await env.service.create_policy(
        MARK | {"targets": MARK["targets"] | {"endpoints": ["es"]}}, by="admin"
    )
    await env.tick_at(utc(2026, 3, 1, 6))
    [fire] = await env.fires("mark-sandbox")
    assert fire.status is FireStatus.FIRED and fire.operation_id is None
    assert fire.reason == "1 mark(s) kept by fleet (no tag API)"
    assert await ops_of(env) == []
    assert await env.store.marks_on("es") == {"es-a": {"fleet-op": "delete.2026-03-15"}}


async def test_a_dry_run_mark_policy_keeps_no_marks(env: Env) -> None:
    sandbox(env)
    spec = MARK | {"targets": {"endpoints": ["es"]}, "dry_run_only": True}
    await env.service.create_policy(spec, by="admin")
    await env.tick_at(utc(2026, 3, 1, 6))
    [fire] = await env.fires("mark-sandbox")
    assert fire.status is FireStatus.FIRED and fire.reason is not None
    assert fire.reason.startswith("dry run")
    assert await env.store.marks_on("es") == {}


async def test_cleanup_reads_the_marks_fleet_keeps(env: Env) -> None:
    sandbox(env)
    await env.service.create_policy(MARK, by="admin")
    await env.service.create_policy(CLEANUP, by="admin")
    await env.tick_at(utc(2026, 3, 1, 6))  # es-a: delete.2026-03-15, kept by fleet
    await env.tick_at(utc(2026, 3, 5, 2, 30))
    op = await fired_operation(env, "cleanup")
    assert op.operation.kind == "delete"
    assert op.operation.selector["ids"] == ["ecs-b", "es-b"]  # fleet's mark is not due yet
    servers = preview_servers((await env.service.preview("cleanup")).to_json())
    assert (servers["es-a"]["act"], servers["es-a"]["mark_kept"]) == (False, "fleet")

    await env.tick_at(utc(2026, 3, 15, 2, 30))
    op = await fired_operation(env, "cleanup")
    assert op.operation.kind == "delete"
    assert op.operation.selector["ids"] == ["ecs-b", "es-a", "es-b"]
    servers = preview_servers((await env.service.preview("cleanup")).to_json())
    assert servers["es-a"]["mark_kept"] == "fleet" and servers["ecs-b"]["mark_kept"] == "tag"
    assert servers["es-a"]["reason"] == "marked delete.2026-03-15"


async def test_an_excluded_server_is_never_marked_and_the_fire_counts_its_operation(
    env: Env,
) -> None:
    """The exclusion tag holds for marks fleet keeps as for tags; the fire's `targets` is what
    its operation acts on (the servers whose marks fleet keeps are counted in its details)."""
    sandbox(env)
    env.cloud.add("es", "es-keep", tags={"env": "sandbox", "fleet-exclude": "true"})
    await env.service.create_policy(MARK, by="admin")
    await env.tick_at(utc(2026, 3, 1, 6))
    [fire] = await env.fires("mark-sandbox")
    assert await env.store.marks_on("es") == {"es-a": {"fleet-op": "delete.2026-03-15"}}
    assert fire.details["skipped_by_reason"]["excluded"] == 1  # type: ignore[index]
    assert fire.targets == 1  # ecs-a; es-a's mark is kept by fleet


async def test_marks_kept_before_the_endpoint_served_tags_still_count_after(env: Env) -> None:
    """An OpenStack endpoint found to serve the tag API (after an upgrade of the cloud, or when
    fleet reads its version document) keeps tags from then on; the marks fleet kept for it
    before are not forgotten: the clean-up acts on them, and the mark policy does not re-date
    them as tags."""
    sandbox(env)
    await env.service.create_policy(MARK, by="admin")
    await env.service.create_policy(CLEANUP, by="admin")
    await env.tick_at(utc(2026, 3, 1, 6))  # es-a: delete.2026-03-15, kept by fleet
    env.cloud.no_tags.discard("es")  # the endpoint now serves the tag API

    servers = preview_servers((await env.service.preview("mark-sandbox")).to_json())
    assert (servers["es-a"]["act"], servers["es-a"]["mark_kept"]) == (False, "tag")
    assert servers["es-a"]["reason"] == "already marked (fleet-op=delete.2026-03-15)"

    await env.tick_at(utc(2026, 3, 15, 2, 30))
    op = await fired_operation(env, "cleanup")
    assert op.operation.selector["ids"] == ["ecs-b", "es-a", "es-b"]
