"""Each driver's create against the simulator: the vendor's request, its batch naming, the
operation's identity tag (found again by one listing), the quota read and the vendor's refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleet.domain import Selector, ServerStatus
from fleet.drivers.base import CreateRequest, Quota
from fleet.drivers.errors import DriverError
from fleet.simulator.control import create_needs
from tests.contract.drivers.conftest import MakeBms, MakeEcs, MakeOs, calls
from tests.simulator_fixtures import Sim

TAGS = {"fleet-op": "op-1", "env": "test"}


def _body(entry: dict[str, object]) -> dict[str, Any]:
    body: dict[str, Any] = entry["body"]  # type: ignore[assignment]
    return body["server"]  # type: ignore[no-any-return]


def _request(sim: Sim, kind: str, name: str, count: int, **kw: object) -> CreateRequest:
    needs: dict[str, Any] = create_needs(sim.ctx)
    need = needs["openstack"] if kind == "openstack" else needs["huawei"][kind]
    values: dict[str, object] = {
        "name": name,
        "count": count,
        "flavor": need["flavor"],
        "image": need["image"],
        "network": need["network"],
        "vpc": need.get("vpc"),
        "availability_zone": need["availability_zone"],
        "tags": TAGS,
    }
    values.update(kw)
    return CreateRequest(**values)  # type: ignore[arg-type]


async def test_ecs_creates_a_batch_under_one_base_name(sim: Sim, make_ecs: MakeEcs) -> None:
    driver = make_ecs()
    sub = await driver.create(_request(sim, "ecs", "web-abc-1", 3, admin_password="s3cret"))
    (sent,) = calls(sim, "POST", "/cloudservers")
    body = _body(sent)
    assert body["count"] == 3 and body["name"] == "web-abc-1"
    assert body["root_volume"] == {"volumetype": "SSD"}
    assert body["adminPass"] == "***"  # sent, and never shown by the simulator's request log
    assert "s3cret" not in json.dumps(list(sim.requests()))
    assert {"key": "fleet-op", "value": "op-1"} in body["server_tags"]
    assert sent["rate_key"] == "huawei-ecs:create"
    assert sub.job_id
    found = [s async for s in driver.list_servers(Selector(tags_all={"fleet-op": "op-1"}))]
    assert sorted(s.name for s in found) == ["web-abc-1-0001", "web-abc-1-0002", "web-abc-1-0003"]
    assert {s.status for s in found} == {ServerStatus.BUILDING}
    sim.advance(120)
    found = [s async for s in driver.list_servers(Selector(tags_all={"fleet-op": "op-1"}))]
    assert {s.status for s in found} == {ServerStatus.RUNNING}
    assert all(s.tags.get("env") == "test" for s in found)


async def test_bms_creates_with_its_mandatory_fields(sim: Sim, make_bms: MakeBms) -> None:
    driver = make_bms()
    sub = await driver.create(_request(sim, "bms", "db-abc-1", 2))
    (sent,) = calls(sim, "POST", "/baremetalservers")
    body = _body(sent)
    assert body["metadata"] == {"op_svc_userid": "fleet"} and body["count"] == 2
    assert sent["rate_key"] == "huawei-bms:create"
    assert sub.job_id
    found = [s async for s in driver.list_servers(Selector(tags_all={"fleet-op": "op-1"}))]
    assert sorted(s.name for s in found) == ["db-abc-1-0001", "db-abc-1-0002"]


async def test_nova_creates_one_server_with_tags(sim: Sim, make_os: MakeOs) -> None:
    driver = make_os()
    before = await driver.quota()
    sub = await driver.create(_request(sim, "openstack", "web-007", 1, key_name="ops"))
    (sent,) = calls(sim, "POST", "/servers")
    body = _body(sent)
    assert body["tags"] == ["fleet-op=op-1", "env=test"] and body["key_name"] == "ops"
    assert sent["rate_key"] == "openstack:create"
    assert len(sub.server_ids) == 1
    found = [s async for s in driver.list_servers(Selector(tags_all={"fleet-op": "op-1"}))]
    assert [(s.id, s.name) for s in found] == [(sub.server_ids[0], "web-007")]
    after = await driver.quota()
    assert isinstance(before, Quota) and isinstance(after, Quota)
    assert after.used == before.used + 1


@pytest.mark.parametrize("kind", ["ecs", "bms"])
async def test_huawei_quota_read_and_refusal_beyond_it(
    sim: Sim, make_ecs: MakeEcs, make_bms: MakeBms, kind: str
) -> None:
    driver = make_ecs() if kind == "ecs" else make_bms()
    quota = await driver.quota()
    assert quota is not None and quota.room > 0
    path = "/cloudservers/limits" if kind == "ecs" else "/baremetalservers/limits"
    assert [e["rate_key"] for e in calls(sim, "GET", path)] == [f"huawei-{kind}:limits"]
    sim.world.catalog.quotas[kind] = quota.used + 2
    assert await driver.quota() == Quota(used=quota.used, limit=quota.used + 2)
    with pytest.raises(DriverError) as refused:
        await driver.create(_request(sim, kind, "big-1", 3))
    assert refused.value.code == "Ecs.0001"
    found = [s async for s in driver.list_servers(Selector(tags_all={"fleet-op": "op-1"}))]
    assert found == []
