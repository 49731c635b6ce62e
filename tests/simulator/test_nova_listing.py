"""Nova v2.1 reads on both mounts: version documents, microversions, bodies, filters and paging."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest

from fleet.simulator.world import iso
from fleet.simulator.worldgen import WorldSpec
from tests.simulator.nova_client import Nova
from tests.simulator_fixtures import Sim, SimFactory

EXTRA = [
    {"name": "web-a", "kind": "ecs", "tags": {"env": "prod", "team": "alpha"}},
    {"name": "web-b", "kind": "ecs", "tags": {"env": "prod", "team": "bravo"}, "status": "SHUTOFF"},
    {"name": "db-a", "kind": "ecs", "tags": {"env": "dev", "pinned": ""}},
    {"name": "metal-a", "kind": "bms", "tags": {"env": "prod"}},
    {"name": "es-web-a", "kind": "openstack", "tags": {"env": "prod"}},
]


@pytest.fixture
async def sim(simulator_factory: SimFactory) -> AsyncIterator[Sim]:
    spec = WorldSpec(
        seed=3, speed=0.001, counts={"ecs": 30, "bms": 5, "openstack": 8}, servers=EXTRA
    )
    async with simulator_factory(spec=spec) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def names(body: dict[str, object]) -> set[str]:
    servers = body["servers"]
    assert isinstance(servers, list)
    return {s["name"] for s in servers}


async def test_huawei_version_documents_close_the_connection(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{sim.base_url}/") as resp:
        versions = (await resp.json())["versions"]
        assert resp.headers["Connection"] == "close"
    async with http.get(f"{sim.base_url}/v2.1") as resp:
        version = (await resp.json())["version"]
    current = next(v for v in versions if v["status"] == "CURRENT")
    assert (current["version"], current["min_version"]) == ("2.60", "2.1")
    assert (version["id"], version["version"], version["min_version"]) == ("v2.1", "2.60", "2.1")


async def test_openstack_version_documents(sim: Sim, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{sim.base_url}/compute/v2.1") as resp:
        version = (await resp.json())["version"]
        assert resp.headers["X-Openstack-Request-Id"].startswith("req-")
        assert resp.headers.get("Connection", "").lower() != "close"
    async with http.get(f"{sim.base_url}/compute/") as resp:
        versions = (await resp.json())["versions"]
    assert (version["version"], version["min_version"]) == ("2.96", "2.1")
    assert version["links"][0]["href"] == f"{sim.base_url}/compute/v2.1/"
    assert [v["id"] for v in versions] == ["v2.1"]


async def test_microversion_negotiation(sim: Sim, http: aiohttp.ClientSession) -> None:
    hw = Nova(sim, http, "huawei")
    too_new = await hw.call("GET", "/servers", version="2.61")
    assert too_new.status == 406 and "maximum is 2.60" in too_new.body["computeFault"]["message"]
    garbage = await hw.call("GET", "/servers", version="two")
    assert garbage.status == 400 and "badRequest" in garbage.body
    ok = await hw.call("GET", "/servers?limit=1", version=None)
    assert ok.headers["X-OpenStack-Nova-API-Version"] == "2.1"
    assert ok.headers["Connection"] == "close"
    os_ = Nova(sim, http, "openstack", version=None)
    new = await os_.call(
        "GET", "/servers?limit=1", headers={"OpenStack-API-Version": "compute 2.96"}
    )
    assert new.status == 200 and new.headers["OpenStack-API-Version"] == "compute 2.96"
    assert (await os_.call("GET", "/servers", version="2.97")).status == 406


async def test_huawei_list_mixes_ecs_and_bms_and_openstack_lists_its_own(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    hw = await Nova(sim, http, "huawei").call("GET", "/servers", params={"limit": "1000"})
    os_ = await Nova(sim, http, "openstack").call("GET", "/servers")
    kinds = {s.id: s.kind for s in sim.world.servers.values()}
    assert {kinds[s["id"]] for s in hw.body["servers"]} == {"ecs", "bms"}
    assert len(hw.body["servers"]) == 30 + 5 + 4
    assert {kinds[s["id"]] for s in os_.body["servers"]} == {"openstack"}
    assert len(os_.body["servers"]) == 9
    assert set(hw.body["servers"][0]) == {"id", "name", "links"}
    self_link = hw.body["servers"][0]["links"][0]
    assert self_link["rel"] == "self"
    first_id = hw.body["servers"][0]["id"]
    assert self_link["href"] == (
        f"{sim.base_url}/v2.1/{sim.world.huawei_project_id}/servers/{first_id}"
    )


async def test_fields_are_gated_by_microversion(sim: Sim, http: aiohttp.ClientSession) -> None:
    web_a = next(s for s in sim.world.servers.values() if s.name == "web-a")
    hw = Nova(sim, http, "huawei")
    old = await hw.call("GET", f"/servers/{web_a.id}", version=None)
    body = old.body["server"]
    for field in ("tags", "locked", "description", "OS-EXT-SRV-ATTR:hostname", "host_status"):
        assert field not in body
    assert body["flavor"]["id"] == web_a.flavor_id and body["flavor"]["links"]
    new = (await hw.call("GET", f"/servers/{web_a.id}", version="2.60")).body["server"]
    assert new["tags"] == ["env=prod", "team=alpha", "__type_virtual"]
    assert new["locked"] is False and new["description"] is None
    assert "id" not in new["flavor"] and new["flavor"]["original_name"] == web_a.flavor_id
    for field in ("OS-EXT-STS:vm_state", "OS-EXT-STS:task_state", "OS-EXT-STS:power_state"):
        assert field in new
    assert new["tenant_id"] == sim.world.huawei_project_id and new["addresses"]


async def test_openstack_body_has_easystack_fields(sim: Sim, http: aiohttp.ClientSession) -> None:
    es = next(s for s in sim.world.servers.values() if s.name == "es-web-a")
    body = await Nova(sim, http, "openstack", version="2.96").server(es.id)
    assert body["flavor"]["id"] == es.flavor_id and body["flavor"]["original_name"] == "m1.small"
    assert body["tags"] == ["env=prod"]
    assert body["deleted"] == "" and body["estimated_deleted"] == ""
    assert body["OS-EXT-STS:power_state"] == 1 and body["status"] == "ACTIVE"
    assert body["user_id"] and body["tenant_id"] == sim.world.openstack_project_id


async def test_paging_walks_every_server_once_in_order(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    hw = Nova(sim, http, "huawei")
    seen: list[str] = []
    url = hw.url("/servers/detail?limit=7&status=ACTIVE")
    pages = 0
    while url:
        async with http.get(
            url, headers={"X-Auth-Token": hw.token, "X-OpenStack-Nova-API-Version": "2.26"}
        ) as resp:
            body = await resp.json()
        pages += 1
        seen += [s["id"] for s in body["servers"]]
        assert all(s["status"] == "ACTIVE" for s in body["servers"])
        links = body.get("servers_links", [])
        url = links[0]["href"] if links else ""
        assert pages < 20
    active = [s for s in sim.world.servers.values() if s.kind != "openstack"]
    expected = sorted(
        (s for s in active if s.status == "ACTIVE"), key=lambda s: (s.created, s.id), reverse=True
    )
    assert seen == [s.id for s in expected]
    assert pages == len(expected) // 7 + 1


async def test_default_page_and_bad_paging(sim: Sim, http: aiohttp.ClientSession) -> None:
    hw = Nova(sim, http, "huawei")
    first = await hw.call("GET", "/servers")
    assert len(first.body["servers"]) == 25
    assert first.body["servers_links"][0]["rel"] == "next"
    last_id = first.body["servers"][-1]["id"]
    assert f"marker={last_id}" in first.body["servers_links"][0]["href"]
    rest = await hw.call("GET", "/servers", params={"marker": last_id})
    assert len(rest.body["servers"]) == 39 - 25 and "servers_links" not in rest.body
    bad = await hw.call("GET", "/servers", params={"marker": "no-such-id"})
    assert bad.status == 400 and "marker" in bad.body["badRequest"]["message"]
    assert (await hw.call("GET", "/servers", params={"limit": "x"})).status == 400
    assert (await hw.call("GET", "/servers", params={"limit": "-1"})).status == 400
    openstack_id = next(s.id for s in sim.world.servers.values() if s.kind == "openstack")
    foreign = await hw.call("GET", "/servers", params={"marker": openstack_id})
    assert foreign.status == 400


async def test_status_name_and_changes_since_filters(sim: Sim, http: aiohttp.ClientSession) -> None:
    hw = Nova(sim, http, "huawei")
    stopped = await hw.call("GET", "/servers/detail", params={"status": "shutoff", "limit": "999"})
    expected = {
        s.name
        for s in sim.world.servers.values()
        if s.kind != "openstack" and s.status == "SHUTOFF"
    }
    assert names(stopped.body) == expected and "web-b" in expected
    regex = await hw.call("GET", "/servers", params={"name": "^web-[ab]$"})
    assert names(regex.body) == {"web-a", "web-b"}
    web_a = next(s for s in sim.world.servers.values() if s.name == "web-a")
    web_a.updated = sim.world.clock.now() + timedelta(hours=1)
    since = iso(sim.world.clock.now() + timedelta(minutes=30))
    changed = await hw.call("GET", "/servers", params={"changes-since": since})
    assert names(changed.body) == {"web-a"}
    assert (await hw.call("GET", "/servers", params={"changes-since": "yesterday"})).status == 400


async def test_unknown_status_is_empty_before_238_and_400_after(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    hw = Nova(sim, http, "huawei")
    old = await hw.call("GET", "/servers", params={"status": "BANANA"}, version="2.37")
    assert old.status == 200 and old.body["servers"] == []
    new = await hw.call("GET", "/servers", params={"status": "BANANA"}, version="2.38")
    assert new.status == 400


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"tags": "env=prod,team=alpha"}, {"web-a"}),
        ({"tags": "__type_baremetal,env=prod"}, {"metal-a"}),
        ({"tags-any": "team=alpha,team=bravo"}, {"web-a", "web-b"}),
        ({"tags": "pinned"}, {"db-a"}),
        ({"tags": "team", "not-tags": "team=bravo", "name": "^web-"}, {"web-a"}),
        ({"not-tags-any": "env,__type_virtual"}, set()),
    ],
    ids=["all", "reserved", "any", "bare", "not", "not-any"],
)
async def test_tag_filters_from_2_26(
    sim: Sim, http: aiohttp.ClientSession, query: dict[str, str], expected: set[str]
) -> None:
    hw = Nova(sim, http, "huawei")
    reply = await hw.call("GET", "/servers", params={**query, "limit": "1000"})
    assert reply.status == 200
    got = names(reply.body)
    explicit = {str(e["name"]) for e in EXTRA}
    assert got & explicit == expected
    if "__type_baremetal" in query.get("tags", ""):
        kinds = {s.name: s.kind for s in sim.world.servers.values()}
        assert {kinds[n] for n in got} == {"bms"}


async def test_tag_filters_are_ignored_below_2_26_and_whole_tags_on_openstack(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    hw = Nova(sim, http, "huawei")
    old = await hw.call(
        "GET", "/servers", params={"tags": "env=prod", "limit": "1000"}, version="2.25"
    )
    assert len(old.body["servers"]) == 39
    es = Nova(sim, http, "openstack")
    prod = {s.name for s in sim.world.visible("openstack") if s.tags.get("env") == "prod"}
    exact = await es.call("GET", "/servers", params={"tags": "env=prod"})
    assert exact.status == 200 and names(exact.body) == prod
    # Upstream Nova compares whole tags: a bare key is a tag of its own, not "any value".
    assert names((await es.call("GET", "/servers", params={"tags": "env"})).body) == set()


async def test_errors_for_auth_and_unknown_servers(sim: Sim, http: aiohttp.ClientSession) -> None:
    hw = Nova(sim, http, "huawei", token="not-a-token")
    unauth = await hw.call("GET", "/servers")
    assert unauth.status == 401 and unauth.headers["Connection"] == "close"
    os_token = Nova(sim, http, "openstack").token
    wrong = await Nova(sim, http, "huawei", token=os_token).call("GET", "/servers")
    assert wrong.status == 401
    missing = await Nova(sim, http, "huawei").call("GET", "/servers/nope")
    assert missing.status == 404
    assert missing.body == {
        "itemNotFound": {"code": 404, "message": "Instance nope could not be found."}
    }
    ecs_id = sim.servers("ecs")[0]
    cross = await Nova(sim, http, "openstack").call("GET", f"/servers/{ecs_id}")
    assert cross.status == 404


async def test_openstack_accepts_the_project_id_in_the_path(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    es = Nova(sim, http, "openstack")
    project = sim.world.openstack_project_id
    headers = {"X-Auth-Token": es.token}
    async with http.get(f"{sim.base_url}/compute/v2.1/{project}/servers", headers=headers) as resp:
        assert resp.status == 200 and len((await resp.json())["servers"]) == 9
    other = "0" * 32
    async with http.get(f"{sim.base_url}/compute/v2.1/{other}/servers", headers=headers) as resp:
        assert resp.status == 400


async def test_flavors_and_availability_zones(sim: Sim, http: aiohttp.ClientSession) -> None:
    es = Nova(sim, http, "openstack", version="2.61")
    detail = await es.call("GET", "/flavors/detail")
    assert {f["id"] for f in detail.body["flavors"]} == {"1", "2", "3", "214"}
    big = next(f for f in detail.body["flavors"] if f["id"] == "214")
    assert (big["vcpus"], big["ram"], big["extra_specs"]) == (8, 16384, {})
    one = await es.call("GET", "/flavors/214")
    assert one.body["flavor"]["name"] == "ecs.c2.large"
    assert (await es.call("GET", "/flavors/nope")).status == 404
    paged = await es.call("GET", "/flavors", params={"limit": "2"})
    assert len(paged.body["flavors"]) == 2 and paged.body["flavors_links"][0]["rel"] == "next"
    hw = await Nova(sim, http, "huawei").call("GET", "/flavors")
    assert "physical.s4.medium" in {f["id"] for f in hw.body["flavors"]}
    zones = await es.call("GET", "/os-availability-zone")
    assert zones.body["availabilityZoneInfo"][0]["zoneState"] == {"available": True}
    limits = await es.call("GET", "/limits")
    assert limits.body["limits"]["rate"] == []
    assert limits.body["limits"]["absolute"]["totalInstancesUsed"] == 9


async def test_reads_are_counted_on_their_rate_keys(sim: Sim, http: aiohttp.ClientSession) -> None:
    sim.set_limit("huawei-nova:list", 2, 60.0)
    hw = Nova(sim, http, "huawei")
    statuses = [(await hw.call("GET", "/servers?limit=1")).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    throttled = await hw.call("GET", "/servers?limit=1")
    assert throttled.body == {
        "error": {
            "code": "Common.1503",
            "message": "Api flow control Error because of too many requests.",
        }
    }
    sim.set_limit("openstack:show", 1, 60.0)
    es = Nova(sim, http, "openstack")
    es_id = sim.servers("openstack")[0]
    assert (await es.call("GET", f"/servers/{es_id}")).status == 200
    refused = await es.call("GET", f"/servers/{es_id}")
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    shows = sim.requests(rate_key="openstack:show")
    assert [e["server_ids"] for e in shows] == [[es_id], [es_id]]


async def test_huawei_native_accepts_an_iam_token_from_the_catalog(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    hw = sim.endpoints["huawei"]
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": hw["username"],
                        "password": hw["password"],
                        "domain": {"name": hw["domain_name"]},
                    }
                },
            },
            "scope": {"project": {"name": hw["region"]}},
        }
    }
    async with http.post(f"{hw['iam_url']}/v3/auth/tokens", json=body) as resp:
        assert resp.status == 201
        token = resp.headers["X-Subject-Token"]
        catalog = (await resp.json())["token"]["catalog"]
    compute = next(s for s in catalog if s["type"] == "compute")["endpoints"][0]["url"]
    headers = {"X-Auth-Token": token, "X-OpenStack-Nova-API-Version": "2.26"}
    async with http.get(f"{compute}/servers/detail", params={"limit": "3"}, headers=headers) as r:
        assert r.status == 200 and r.headers["Connection"] == "close"
        servers = (await r.json())["servers"]
    assert len(servers) == 3 and all(s["tenant_id"] == hw["project_id"] for s in servers)
