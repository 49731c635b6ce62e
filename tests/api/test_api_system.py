"""Endpoints with live limiter state, the server inventory, health and readiness."""

from __future__ import annotations

from tests.api.conftest import Api


async def test_endpoints_show_every_rate_key_with_budget_and_use(api: Api) -> None:
    before = await api.get("/v1/endpoints")
    assert before.status == 200
    names = [e["name"] for e in before.body["items"]]
    assert names == ["ecs-sim", "bms-sim", "easystack-sim"]
    # Only a provider with variants has a flavour to show.
    assert [(e["provider"], e["flavour"]) for e in before.body["items"]] == [
        ("huawei-ecs", None),
        ("huawei-bms", None),
        ("openstack", "easystack"),
    ]
    by_key = {k["rate_key"]: k for e in before.body["items"] for k in e["rate_keys"]}
    assert by_key["ecs-sim:action"]["budgets"] == [
        {"limit": 1000, "period": 60.0, "unit": "servers"}
    ]
    assert by_key["bms-sim:action"]["budgets"] == [
        {"limit": 50, "period": 60.0, "unit": "requests"}
    ]
    servers = await api.servers("ecs-sim", status="running")
    ids = [str(s["id"]) for s in servers[:2]]
    made = await api.post(
        "/v1/operations", {"action": "stop", "targets": {"endpoints": ["ecs-sim"], "ids": ids}}
    )
    await api.wait(str(made.body["id"]))
    after = await api.get("/v1/endpoints")
    key = next(
        k for e in after.body["items"] for k in e["rate_keys"] if k["rate_key"] == "ecs-sim:action"
    )
    assert key["used"]["servers"] >= 2
    assert key["throttled"] == 0 and key["queued"] == 0


async def test_servers_use_the_target_selectors_and_page(api: Api) -> None:
    everything = await api.get("/v1/servers", params={"limit": "1000"})
    total = len(everything.body["items"])
    assert total == 16 + 8 + 16
    tagged = await api.get("/v1/servers", params=[("tag", "env=dev"), ("limit", "1000")])
    assert tagged.body["items"]
    assert all(s["tags"]["env"] == "dev" for s in tagged.body["items"])
    assert len(tagged.body["items"]) < total
    named = await api.get("/v1/servers", params={"name": "bms-*", "limit": "1000"})
    assert {s["endpoint"] for s in named.body["items"]} == {"bms-sim"}
    stopped = await api.get("/v1/servers", params={"status": "stopped", "limit": "1000"})
    assert all(s["status"] == "stopped" for s in stopped.body["items"])
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params = {"limit": "15", **({"cursor": cursor} if cursor else {})}
        page = await api.get("/v1/servers", params=params)
        seen += [f"{s['endpoint']}/{s['id']}" for s in page.body["items"]]
        cursor = page.body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == total


async def test_health_is_open_and_ready_reports_its_checks(api: Api) -> None:
    health = await api.get("/healthz", role=None)
    assert health.status == 200 and health.body == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status == 200
    assert ready.body["status"] == "ready"
    assert ready.body["checks"]["database"] == "ok"
    assert ready.body["checks"]["engine"] == "running"
    assert ready.body["checks"]["endpoints"] == "3"


async def test_ready_reports_this_replicas_worker_lock_leadership_and_budgets(
    api_db: Api,
) -> None:
    api = api_db
    ready = await api.get("/readyz")
    assert ready.status == 200, ready.body
    checks = ready.body["checks"]
    assert checks["worker"] == api.fleet.runtime.config.worker
    assert checks["worker_lock"] == "held"
    assert checks["leader"] in ("yes", "off")  # the only process leads (if policies run)
    postgres = api.fleet.settings.database.url.startswith("postgresql")
    assert checks["budgets"] == ("shared" if postgres else "local")
