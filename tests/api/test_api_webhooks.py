"""Webhooks over the API, with a real receiver on loopback: subscriptions (admin only, the secret
write-only and never stored), events of a real operation and a policy fire delivered within
seconds, signed so that the independent `standardwebhooks` verifier accepts them, in order;
retries with backoff (500, 500, then 200, the same event id each time); failed sub-jobs batched
per operation; filters; the delivery log and the test send. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleet.webhooks.tables import WEBHOOK_OUTBOX, WEBHOOKS
from tests.api.conftest import Api, api_settings, serving
from tests.webhook_receiver import SECRET, Receiver, verify

ENV = "FLEET_TEST_WHSEC"
FAST = {"FLEET_WEBHOOKS__POLL_INTERVAL": "0.2", "FLEET_WEBHOOKS__BACKOFF": "[0.5, 1.0, 60.0]"}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def hooks(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    monkeypatch.setenv(ENV, SECRET)
    async with serving(api_settings(tmp_path, db_url, **FAST)) as running:
        yield running


async def _subscribe(api: Api, url: str, **extra: object) -> dict[str, object]:
    body = {"url": url, "events": ["*"], "secret": f"env:{ENV}", **extra}
    reply = await api.call("POST", "/v1/webhooks", json=body, role="admin")
    assert reply.status == 201, reply.body
    return reply.body


async def _stop(api: Api, n: int, endpoint: str = "ecs-sim") -> str:
    servers = await api.servers(endpoint, status="running")
    ids = [str(s["id"]) for s in servers[:n]]
    body = {"action": "stop", "targets": {"endpoints": [endpoint], "ids": ids}}
    reply = await api.post("/v1/operations", body)
    assert reply.status == 202, reply.body
    return str(reply.body["id"])


def _of(receiver: Receiver, subject: str) -> list[dict[str, object]]:
    return [verify(g) for g in receiver.got if g.event.get("subject") == subject]


async def test_subscriptions_are_admin_only_and_the_secret_is_write_only(
    hooks: Api, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    api = hooks
    literal = await api.call(
        "POST", "/v1/webhooks", json={"url": receiver.url, "events": ["*"], "secret": SECRET}
    )
    assert literal.status == 422 and literal.body["field"] == "secret"
    assert "literal secret" in str(literal.body["detail"])
    assert SECRET not in str(literal.body)
    unset = await api.call(
        "POST", "/v1/webhooks", json={"url": receiver.url, "events": ["*"], "secret": "env:NOPE_X"}
    )
    assert unset.status == 422 and unset.body["field"] == "secret"
    for body, field in (
        ({"url": "ftp://x/", "events": ["*"], "secret": f"env:{ENV}"}, "url"),
        ({"url": receiver.url, "events": ["fleet.nope"], "secret": f"env:{ENV}"}, "events[0]"),
        ({"url": receiver.url, "events": [], "secret": f"env:{ENV}"}, "events"),
        (
            {"url": receiver.url, "events": ["*"], "secret": f"env:{ENV}", "filter": {"x": []}},
            "filter.x",
        ),
        (
            {
                "url": receiver.url,
                "events": ["*"],
                "secret": f"env:{ENV}",
                "filter": {"endpoint": ["nowhere"]},
            },
            "filter.endpoint",
        ),
        ({"url": "http://169.254.169.254/", "events": ["*"], "secret": f"env:{ENV}"}, "url"),
    ):
        bad = await api.call("POST", "/v1/webhooks", json=body)
        assert bad.status == 422 and bad.body["field"] == field, (field, bad.body)
    for role in ("viewer", "operator"):
        refused = await api.call("GET", "/v1/webhooks", role=role)
        assert refused.status == 403
    created = await _subscribe(api, receiver.url, filter={"endpoint": ["ecs-sim"]})
    assert created["secret"] == "set" and created["filter"] == {"endpoint": ["ecs-sim"]}
    hook = f"/v1/webhooks/{created['id']}"
    for reply in (await api.call("GET", hook), await api.call("GET", "/v1/webhooks")):
        assert reply.status == 200 and ENV not in str(reply.body) and SECRET not in str(reply.body)
    patched = await api.call("PATCH", hook, json={"events": ["fleet.policy.fired"], "filter": None})
    assert patched.status == 200, patched.body
    assert patched.body["events"] == ["fleet.policy.fired"] and patched.body["filter"] == {}
    bad_patch = await api.call("PATCH", hook, json={"secret": SECRET})
    assert bad_patch.status == 422 and bad_patch.body["field"] == "secret"
    async with api.fleet.store.db.read() as conn:
        stored = (await conn.execute(sa.select(WEBHOOKS.c.secret_ref))).scalars().all()
    assert stored == [f"env:{ENV}"]  # the reference, never the secret
    assert (await api.call("DELETE", hook)).status == 200
    assert (await api.call("GET", hook)).status == 404
    logged = capsys.readouterr()
    assert "request_handled" in logged.out  # the service's log is here, without the secret
    assert SECRET not in logged.out + logged.err


async def test_an_operation_tells_created_started_finished_signed_in_order(
    hooks: Api, receiver: Receiver
) -> None:
    api = hooks
    sub = await _subscribe(api, receiver.url)
    op_id = await _stop(api, 2)
    final = await api.wait(op_id)
    assert final["state"] == "succeeded"
    await receiver.wait_for(lambda r: "fleet.operation.finished" in r.types(), 15)
    events = _of(receiver, op_id)  # each one verified by standardwebhooks
    types = [e["type"] for e in events]
    assert types == [
        "fleet.operation.created",
        "fleet.operation.started",
        "fleet.operation.finished",
    ]
    finished = events[-1]
    assert finished["specversion"] == "1.0" and finished["source"] == "/v1/operations"
    data = finished["data"]
    assert isinstance(data, dict)
    assert data["outcome"] == "succeeded" and data["endpoints"] == ["ecs-sim"]
    assert data["operation_id"] == op_id and data["targets"] == 2
    ids = [g.id for g in receiver.got]
    assert len(set(ids)) == len(ids)
    assert [g.id for g in receiver.got if g.event["subject"] == op_id] == [e["id"] for e in events]
    for got in receiver.got:  # within 10 s of the event
        sent = got.event["time"]
        assert isinstance(sent, str)
        stamp = time.mktime(time.strptime(sent[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        assert got.at - stamp < 10
    log = await api.call("GET", f"/v1/webhooks/{sub['id']}/deliveries")
    assert log.status == 200
    items = log.body["items"]
    assert isinstance(items, list) and len(items) == 3
    for item in items:
        assert item["status"] == "delivered" and item["status_code"] == 200
        assert item["attempts"] == 1 and item["latency_ms"] is not None
        assert item["log"][0]["status_code"] == 200


async def test_a_receiver_answering_500_gets_the_same_event_again_after_backoff(
    hooks: Api, receiver: Receiver
) -> None:
    api = hooks
    receiver.answers = [500, 500]
    sub = await _subscribe(api, receiver.url, events=["fleet.operation.created"])
    op_id = await _stop(api, 1)
    await receiver.wait_for(lambda r: len(r.got) >= 3, 20)
    first, second, third = receiver.got[:3]
    assert first.id == second.id == third.id  # one event, three attempts
    assert first.event["subject"] == op_id
    assert second.at - first.at >= 0.45 and third.at - second.at >= 0.95  # backoff 0.5 s, 1 s
    verify(third)

    async def delivered() -> dict[str, object]:
        while True:
            log = await api.call("GET", f"/v1/webhooks/{sub['id']}/deliveries")
            [item] = log.body["items"]
            if item["status"] == "delivered":
                return item
            await asyncio.sleep(0.1)

    item = await asyncio.wait_for(delivered(), 10)
    assert item["attempts"] == 3
    assert [a["status_code"] for a in item["log"]] == [500, 500, 200]
    await asyncio.sleep(0.5)
    assert len(receiver.got) == 3  # delivered: not sent again


async def test_failed_subjobs_are_one_batched_event_and_filters_apply(
    hooks: Api, receiver: Receiver
) -> None:
    api = hooks
    other = Receiver()
    await other.start()
    try:
        await _subscribe(
            api, receiver.url, events=["fleet.subjobs.failed", "fleet.operation.finished"]
        )
        await _subscribe(api, other.url, filter={"endpoint": ["bms-sim"]})  # not this endpoint
        servers = await api.servers("ecs-sim", status="running")
        ids = [str(s["id"]) for s in servers[:4]]
        sim = api.fleet.simulator_url
        for server_id in ids[:3]:
            async with api.client.session.post(
                f"{sim}/_sim/faults", json={"kind": "job_fail", "server_ids": [server_id]}
            ) as resp:
                assert resp.status == 201
        body = {"action": "stop", "targets": {"endpoints": ["ecs-sim"], "ids": ids}}
        op_id = str((await api.post("/v1/operations", body)).body["id"])
        final = await api.wait(op_id)
        assert final["state"] == "completed_with_failures"
        await receiver.wait_for(lambda r: "fleet.operation.finished" in r.types(), 15)
        await asyncio.sleep(3)  # a batch still open would go within BATCH_WAIT
        failed = [verify(g) for g in receiver.got if g.event["type"] == "fleet.subjobs.failed"]
        assert 1 <= len(failed) <= 3
        servers_told = [s["server_id"] for e in failed for s in e["data"]["servers"]]  # type: ignore[index, union-attr]
        assert sorted(servers_told) == sorted(ids[:3])
        finished = next(
            verify(g) for g in receiver.got if g.event["type"] == "fleet.operation.finished"
        )
        assert finished["data"]["outcome"] == "completed_with_failures"  # type: ignore[index]
        assert other.got == []
    finally:
        await other.stop()


async def test_a_policy_fire_is_told_with_its_outcome(hooks: Api, receiver: Receiver) -> None:
    api = hooks
    await _subscribe(
        api, receiver.url, events=["fleet.policy.fired"], filter={"policy": ["hook-stop"]}
    )
    policy = {
        "name": "hook-stop",
        "cron": "0 20 * * *",
        "action": "stop",
        "targets": {"endpoints": ["ecs-sim"], "name": "no-such-server-*"},
    }
    assert (await api.call("POST", "/v1/policies", json=policy)).status == 201
    run = await api.post("/v1/policies/hook-stop/run")
    assert run.status == 200, run.body
    await receiver.wait_for(lambda r: len(r.got) >= 1, 15)
    event = verify(receiver.got[0])
    assert event["type"] == "fleet.policy.fired" and event["subject"] == "hook-stop"
    data = event["data"]
    assert isinstance(data, dict)
    assert data["outcome"] == "nothing_to_do" and data["policy"] == "hook-stop"
    assert data["reason"] == "no servers to act on"


async def test_the_test_send_answers_what_the_receiver_said(hooks: Api, receiver: Receiver) -> None:
    api = hooks
    sub = await _subscribe(api, receiver.url, events=["fleet.drift.detected"])
    sent = await api.call("POST", f"/v1/webhooks/{sub['id']}/test")
    assert sent.status == 200, sent.body
    assert sent.body["status"] == "delivered" and sent.body["status_code"] == 200
    [got] = receiver.got
    assert verify(got)["type"] == "fleet.webhook.test"
    assert got.headers["content-type"] == "application/cloudevents+json"
    receiver.answers = [503]
    again = await api.call("POST", f"/v1/webhooks/{sub['id']}/test")
    assert again.body["status"] == "failed" and again.body["status_code"] == 503
    log = await api.call("GET", f"/v1/webhooks/{sub['id']}/deliveries", params={"status": "failed"})
    assert [d["id"] for d in log.body["items"]] == [again.body["id"]]
    async with api.fleet.store.db.read() as conn:
        pending = (
            await conn.execute(
                sa.select(sa.func.count()).where(WEBHOOK_OUTBOX.c.status == "pending")
            )
        ).scalar()
    assert pending == 0  # test sends are not retried


async def test_an_exhausted_error_budget_is_told_then_the_failed_outcome(
    hooks: Api, receiver: Receiver
) -> None:
    api = hooks
    events = ["fleet.operation.budget_exhausted", "fleet.operation.finished"]
    await _subscribe(api, receiver.url, events=events, filter={"state": ["stopping", "failed"]})
    servers = await api.servers("ecs-sim", status="running")
    ids = [str(s["id"]) for s in servers[:6]]
    for server_id in ids[:2]:
        async with api.client.session.post(
            f"{api.fleet.simulator_url}/_sim/faults",
            json={"kind": "job_fail", "server_ids": [server_id]},
        ) as resp:
            assert resp.status == 201
    body = {
        "action": "stop",
        "targets": {"endpoints": ["ecs-sim"], "ids": ids},
        "strategy": {"max_errors": 1, "max_in_flight": 2},
    }
    reply = await api.post("/v1/operations", body)
    assert reply.status == 202, reply.body
    final = await api.wait(str(reply.body["id"]))
    assert final["state"] == "stopped", final
    await receiver.wait_for(lambda r: "fleet.operation.finished" in r.types(), 15)
    told = [verify(g) for g in receiver.got]
    assert [e["type"] for e in told] == events
    assert told[0]["data"]["state"] == "stopping"  # type: ignore[index]
    assert "max_errors 1 exceeded" in str(told[0]["data"]["message"])  # type: ignore[index]
    assert told[1]["data"]["outcome"] == "failed"  # type: ignore[index]
    assert "max_errors 1 exceeded" in str(told[1]["data"]["halted_reason"])  # type: ignore[index]
    assert told[1]["data"]["refused_reason"] is None  # type: ignore[index]
