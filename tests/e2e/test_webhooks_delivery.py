"""Webhook delivery across crashes and replicas, with real `fleet serve` processes, a real
receiver on loopback, and the outbox read straight from the database.

- `kill -9` of `fleet serve` while operations run and events are being sent: after restarts,
  every event the operations caused is in the outbox and was received (none lost), a duplicate
  is the same event again (same `webhook-id`, same body), and first receipts follow the outbox
  order (ordering per subscription).
- Two replicas on one PostgreSQL database: each event is received exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleet.webhooks import on_engine_events
from fleet.webhooks.store import WebhookStore
from fleet.webhooks.tables import WEBHOOK_OUTBOX
from jobs.operations import Operations
from jobs.records import NewOperation
from jobs.store import SqlJobStore
from jobs.store.migrate import upgrade
from tests.e2e.procs import (
    free_port,
    get_json,
    kill9,
    post_json,
    simulator_process,
    start_serve,
    wait_listening,
)
from tests.webhook_receiver import SECRET, Receiver, receiver_thread, verify

WORLD = """
seed = 7
speed = 50.0
[generate]
ecs = 8
bms = 0
openstack = 0
"""
EXPECTED = ("fleet.operation.created", "fleet.operation.started", "fleet.operation.finished")


def _config(path: Path, db_url: str, sim: Mapping[str, Mapping[str, str]]) -> None:
    hw = sim["huawei"]
    path.write_text(
        f"""
[database]
url = "{db_url}"
[engine]
lease_seconds = 30
poll_interval = 0.5
idle_interval = 0.1
drain_grace = 1.0
[logging]
format = "json"
[policies]
enabled = false
[webhooks]
poll_interval = 0.2
lease_seconds = 6
backoff = [0.5, 1.0, 2.0, 2.0, 2.0]
[[endpoints]]
name = "ecs"
provider = "huawei-ecs"
ecs_url = "{hw["ecs_url"]}"
iam_url = "{hw["iam_url"]}"
project_id = "{hw["project_id"]}"
region = "{hw["region"]}"
credentials = {{ ak_env = "E2E_AK", sk_env = "E2E_SK" }}
budgets = {{ action = [{{ limit = 20, period = 1, unit = "servers" }}] }}
"""
    )


async def _outbox(store: SqlJobStore) -> list[sa.Row[tuple[object, ...]]]:
    async with store.db.read() as conn:
        stmt = sa.select(WEBHOOK_OUTBOX).order_by(WEBHOOK_OUTBOX.c.id)
        return list((await conn.execute(stmt)).all())


async def _settled(store: SqlJobStore, ops: Operations, op_ids: list[str], seconds: float) -> None:
    """Until every operation has finished and the outbox holds nothing pending."""
    deadline = time.monotonic() + seconds
    while True:
        views = [await ops.get(op_id) for op_id in op_ids]
        done = all(v is not None and v.operation.finished_at is not None for v in views)
        rows = await _outbox(store)
        if done and rows and all(r.status == "delivered" for r in rows):
            return
        assert time.monotonic() < deadline, [(r.type, r.status, r.attempts) for r in rows]
        await asyncio.sleep(0.2)


def _check_received(
    receiver: Receiver, rows: list[sa.Row[tuple[object, ...]]], *, ordered: bool = True
) -> dict[str, int]:
    """Every outbox event received, duplicates identical, first receipts in outbox order."""
    bodies: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    order: list[str] = []
    for got in list(receiver.got):
        verify(got)
        if got.id in bodies:
            assert bodies[got.id] == got.body, "a duplicate differs from the first send"
        else:
            bodies[got.id] = got.body
            order.append(got.id)
        counts[got.id] = counts.get(got.id, 0) + 1
    outbox_ids = [str(r.event_id) for r in rows]
    assert set(outbox_ids) == set(bodies), "an event of the outbox was never received"
    if ordered:
        assert order == outbox_ids, "first receipts are not in the outbox's order"
    return counts


def _env(sim: Mapping[str, Mapping[str, str]], port: int) -> dict[str, str]:
    return {
        "E2E_AK": sim["huawei"]["ak"],
        "E2E_SK": sim["huawei"]["sk"],
        "FLEET_SERVICE__PORT": str(port),
        "FLEET_TEST_WHSEC": SECRET,
    }


async def _subscribe(store: SqlJobStore, url: str) -> None:
    hooks = WebhookStore(store.db)
    values = {"url": url, "events": ["*"], "filter": {}, "secret_ref": "env:FLEET_TEST_WHSEC"}
    await hooks.create(values, "e2e", datetime.now(UTC))


@pytest.mark.timeout(300)
async def test_kill_9_of_fleet_serve_loses_no_event(tmp_path: Path, db_url: str) -> None:
    world = tmp_path / "world.toml"
    world.write_text(WORLD)
    with simulator_process(world, tmp_path / "sim.log") as sim_url, receiver_thread(0.15) as rx:
        sim = get_json(f"{sim_url}/_sim/endpoints")
        post_json(
            f"{sim_url}/_sim/faults",
            {"kind": "latency", "match": "*:action", "count": 0, "ms": 400},
        )
        config = tmp_path / "fleet.toml"
        _config(config, db_url, sim)  # type: ignore[arg-type]
        await asyncio.to_thread(upgrade, db_url)
        store = SqlJobStore(db_url)
        store.db.listen(on_engine_events)  # this process writes engine events too (creates)
        port, log = free_port(), tmp_path / "serve.log"
        env = _env(sim, port)  # type: ignore[arg-type]
        proc = None
        try:
            await _subscribe(store, rx.url)
            ops = Operations(store)
            proc = start_serve(config, env, log, "--worker", "hooks-a")
            wait_listening(proc, port, log)
            op_ids = []
            for kind in ("stop", "start", "reboot"):
                view, _ = await ops.create(
                    NewOperation(kind=kind, params={}, selector={}, created_by="e2e")
                )
                op_ids.append(view.operation.id)
                await asyncio.sleep(1.5)  # events in flight (the receiver takes 0.15 s each)
                kill9(proc)
                proc = start_serve(config, env, log, "--worker", "hooks-a")
                wait_listening(proc, port, log)
            await _settled(store, ops, op_ids, 180)
            rows = await _outbox(store)
        finally:
            if proc is not None:
                kill9(proc)
            await store.close()
        counts = _check_received(rx, rows)
    for op_id in op_ids:
        told = [str(r.type) for r in rows if r.subject == op_id and r.type in EXPECTED]
        assert told == list(EXPECTED), (op_id, told)
    assert sum(counts.values()) >= len(rows)


@pytest.mark.postgres
@pytest.mark.timeout(300)
async def test_two_replicas_deliver_each_event_once(tmp_path: Path, pg_url: str) -> None:
    world = tmp_path / "world.toml"
    world.write_text(WORLD)
    with simulator_process(world, tmp_path / "sim.log") as sim_url, receiver_thread(0.05) as rx:
        sim = get_json(f"{sim_url}/_sim/endpoints")
        config = tmp_path / "fleet.toml"
        _config(config, pg_url, sim)  # type: ignore[arg-type]
        await asyncio.to_thread(upgrade, pg_url)
        store = SqlJobStore(pg_url)
        store.db.listen(on_engine_events)
        procs = []
        try:
            await _subscribe(store, rx.url)
            for name in ("blue", "green"):
                port, log = free_port(), tmp_path / f"{name}.log"
                procs.append(start_serve(config, _env(sim, port), log, "--worker", name))  # type: ignore[arg-type]
                wait_listening(procs[-1], port, log)
            ops = Operations(store)
            op_ids = []
            for kind in ("stop", "start", "reboot"):
                view, _ = await ops.create(
                    NewOperation(kind=kind, params={}, selector={}, created_by="e2e")
                )
                op_ids.append(view.operation.id)
                await asyncio.sleep(0.5)
            await _settled(store, ops, op_ids, 180)
            await asyncio.sleep(1.0)  # anything sent twice would have arrived by now
            rows = await _outbox(store)
            assert all(p.poll() is None for p in procs)  # both replicas were up throughout
        finally:
            for p in procs:
                kill9(p)
            await store.close()
        # Known gap: with several writers at once on PostgreSQL, an outbox id taken earlier can
        # commit later than a higher one already sent, so the order is not checked here.
        counts = _check_received(rx, rows, ordered=False)
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v > 1}
    assert len(counts) == len(rows) >= 3 * len(op_ids)
