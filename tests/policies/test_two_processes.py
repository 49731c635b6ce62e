"""Two real service processes on one PostgreSQL: every slot fires exactly once; SIGKILL the
leader and the standby fires the next slots.

Each process is `python -m fleet.cli.policy_runner` (engine + policy scheduler, its own embedded
simulator with the same seeded world). The schedule is accelerated: a slot every 2 seconds, with
a 60 s misfire grace, and fires are dry runs (a plan, nothing sent). The database is the witness:
one `policy_fires` row per slot with no gaps, one operation per fired slot, the fires of the
first process before the kill and of the second after it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleet.policies.cron import Schedule
from fleet.policies.records import FireRecord, FireStatus
from fleet.policies.store import PolicyStore
from jobs.store.db import Database
from jobs.store.migrate import upgrade
from jobs.store.models import OPERATIONS

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
CRON = "*/2 * * * * *"
TZ = "Europe/Berlin"


def _files(tmp: Path, url: str) -> tuple[Path, Path]:
    world = tmp / "world.toml"
    world.write_text("seed = 5\nspeed = 50.0\n[generate]\necs = 6\nbms = 0\nopenstack = 0\n")
    config = tmp / "config.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n'
        f'[simulator]\nenabled = true\nseed = 5\nspeed = 50.0\nworld = "{world}"\n'
        "[engine]\npoll_interval = 0.5\nidle_interval = 0.1\nlease_seconds = 5.0\n"
        '[logging]\nformat = "json"\n'
        '[[endpoints]]\nname = "ecs-sim"\nprovider = "huawei-ecs"\nsimulator = true\n'
    )
    policies = tmp / "policies.toml"
    policies.write_text(
        f'[[policies]]\nname = "tick"\ncron = "{CRON}"\ntimezone = "{TZ}"\naction = "stop"\n'
        'dry_run_only = true\nmisfire_grace = "60s"\ntargets = { endpoints = ["ecs-sim"] }\n'
    )
    return config, policies


@contextmanager
def runner(name: str, config: Path, policies: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "fleet.cli.policy_runner", "--config", str(config),
                "--policies", str(policies), "--name", name, "--sweep", "1",
                "--leader-retry", "0.5", "--stale-after", "2",
            ],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ),
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _fires(store: PolicyStore) -> list[FireRecord]:
    return sorted(await store.list_fires("tick", 10_000), key=lambda f: f.scheduled_at)


async def _until(store: PolicyStore, procs: list[subprocess.Popen[bytes]], logs: list[Path],
                 done: object) -> list[FireRecord]:  # fmt: skip
    async with asyncio.timeout(90):
        while True:
            for proc, log in zip(procs, logs, strict=True):
                assert proc.poll() is None, log.read_text()[-3000:]
            fires = await _fires(store)
            if done(fires):  # type: ignore[operator]
                return fires
            await asyncio.sleep(0.2)


def _fired_by(fires: list[FireRecord], worker: str) -> list[FireRecord]:
    return [f for f in fires if f.worker == worker and f.status is FireStatus.FIRED]


async def test_two_processes_fire_each_slot_once_and_the_standby_takes_over(
    pg_url: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(upgrade, pg_url)
    config, policies = _files(tmp_path, pg_url)
    db = Database(pg_url)
    store = PolicyStore(db)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    try:
        with runner("pA", config, policies, logs[0]) as a:
            await _until(store, [a], logs[:1], lambda f: len(_fired_by(f, "pA")) >= 2)
            with runner("pB", config, policies, logs[1]) as b:
                async with asyncio.timeout(60):
                    while "policy_runner_started" not in logs[1].read_text():
                        assert b.poll() is None, logs[1].read_text()[-3000:]
                        await asyncio.sleep(0.2)
                seen = len(_fired_by(await _fires(store), "pA"))
                before = await _until(
                    store, [a, b], logs, lambda f: len(_fired_by(f, "pA")) >= seen + 3
                )
                assert {f.worker for f in before} == {"pA"}, "the standby fired while standing by"
                a.send_signal(signal.SIGKILL)
                a.wait(timeout=10)
                killed_after = before[-1].scheduled_at
                fires = await _until(store, [b], logs[1:], lambda f: len(_fired_by(f, "pB")) >= 3)
                b.send_signal(signal.SIGTERM)
                b.wait(timeout=30)
        fires = await _fires(store)
        await _check(db, fires, killed_after)
    finally:
        await db.dispose()


async def _check(db: Database, fires: list[FireRecord], killed_after: datetime) -> None:
    slots = [f.scheduled_at for f in fires]
    assert len(slots) == len(set(slots))
    expected = [
        s.at for s in Schedule.of(CRON, TZ).between(slots[0] - timedelta(microseconds=1), slots[-1], 10_000)
    ]  # fmt: skip
    assert slots == expected, "every slot from the first to the last has exactly one row"
    a_slots = [f.scheduled_at for f in fires if f.worker == "pA"]
    b_slots = [f.scheduled_at for f in fires if f.worker == "pB"]
    assert a_slots and b_slots and max(a_slots) < min(b_slots)
    assert max(a_slots) >= killed_after
    for fire in fires[:-1]:  # the last may have been cut short by the SIGTERM
        assert fire.status in (FireStatus.FIRED, FireStatus.SKIPPED), fire
        if fire.status is FireStatus.SKIPPED:
            assert fire.worker == "pB" and "missed" in str(fire.reason), fire
    async with db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(OPERATIONS.c.id, OPERATIONS.c.idempotency_key).where(
                    OPERATIONS.c.idempotency_key.like("policy:tick:%")
                )
            )
        ).all()
    fired = {f.operation_id: f.idempotency_key for f in fires if f.status is FireStatus.FIRED}
    assert dict(rows) == fired, "one operation per fired slot, under the slot's key"
