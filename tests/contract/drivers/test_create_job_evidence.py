"""A Huawei create's job as evidence (decision D44): a planned server its listing does not show
is judged by the job of the call accepted for it, read from the simulator's job document. A job
still running: wait, send nothing; a job that failed for an unlisted server: the vendor's reason
(the poll fails it, a verification creates it again); a job that made it and the server is gone:
failed, never created a second time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fleet.drivers.huawei.ecs import HuaweiEcsDriver
from fleet.engine import creating
from fleet.engine.opspec import parse_params
from fleet.engine.templates import batch_base
from fleet.simulator.control import create_needs
from fleet.simulator.faults import parse_rule
from jobs.outcomes import Accepted, Completed, Failed, Resubmit, StillRunning
from jobs.records import Batch, SubJobRecord
from jobs.states import State
from tests.contract.drivers.conftest import MakeEcs
from tests.simulator_fixtures import Sim

OP = "0123456789abcdef0123456789abcdef"
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _raw(sim: Sim, count: int) -> dict[str, Any]:
    need: dict[str, Any] = create_needs(sim.ctx)["huawei"]["ecs"]
    return {
        "count": count,
        "name": "web-{n}",
        "flavor": need["flavor"],
        "image": need["image"],
        "network": need["network"],
        "vpc": need["vpc"],
        "availability_zone": need["availability_zone"],
    }


def _subjob(n: int, job_id: str, *, verify: bool) -> SubJobRecord:
    return SubJobRecord(
        id=n, operation_id=OP, seq=n, target_id=f"ecs/web-{n}", kind="create",
        rate_key="ecs:create", batch_key="ecs:create:0",
        payload={"endpoint": "ecs", "server_id": "", "slot": n, "name": f"web-{n}",
                 "recipe": "create"},
        memo={"created_as": batch_base("web-{n}", OP, 1), "count": 3, "job_id": job_id},
        state=State.PENDING if verify else State.AWAITING, step=0, attempt=1, throttles=0,
        not_before=T0, verify_first=verify, cloud_job_id=None if verify else job_id,
        request_id=None, accepted_at=None, error_code=None, error_message=None, reason=None,
        lease_owner=None, lease_expires_at=None, call_id=None, created_at=T0, updated_at=T0,
    )  # fmt: skip


async def _created(sim: Sim, driver: HuaweiEcsDriver, raw: dict[str, Any]) -> str:
    """One accepted batch call of three planned servers; its job id."""
    batch = _batch(raw, [])
    outcomes = await creating.submit(batch, driver, parse_params("create", raw), None)
    accepted = [o for o in outcomes.values() if isinstance(o, Accepted)]
    assert len(accepted) == 3 and accepted[0].cloud_job_id
    return accepted[0].cloud_job_id


def _batch(raw: dict[str, Any], subjobs: list[SubJobRecord], *, verify: bool = False) -> Batch:
    rows = subjobs or [_subjob(n, "", verify=False) for n in (1, 2, 3)]
    return Batch(OP, "create", 0, "ecs:create", "ecs:create:0", raw, tuple(rows), verify=verify)


def _delete(sim: Sim, name: str) -> None:
    (server,) = [s for s in sim.world.servers.values() if s.name == name]
    server.deleted_at = sim.world.clock.now()


async def test_a_job_that_made_a_server_now_gone_is_never_created_again(
    sim: Sim, make_ecs: MakeEcs
) -> None:
    driver, raw = make_ecs(), _raw(sim, 3)
    job_id = await _created(sim, driver, raw)
    sim.advance(120)  # the job ends SUCCESS, every server ACTIVE
    _delete(sim, f"{batch_base('web-{n}', OP, 1)}-0002")
    params = parse_params("create", raw)
    polled = await creating.poll(
        _batch(raw, [_subjob(n, job_id, verify=False) for n in (1, 2, 3)]), driver, params
    )
    assert isinstance(polled[1], Completed) and isinstance(polled[3], Completed)
    assert isinstance(polled[2], Failed) and "not created again" in polled[2].reason
    rows = [_subjob(n, job_id, verify=True) for n in (1, 2, 3)]
    verified = await creating.verify(_batch(raw, rows, verify=True), driver, params)
    assert isinstance(verified[2], Failed), verified[2]  # not Resubmit: no second server


async def test_a_running_job_is_followed_and_nothing_is_sent(sim: Sim, make_ecs: MakeEcs) -> None:
    driver, raw = make_ecs(), _raw(sim, 3)
    job_id = await _created(sim, driver, raw)
    _delete(sim, f"{batch_base('web-{n}', OP, 1)}-0003")  # not listed, its job still running
    params = parse_params("create", raw)
    polled = await creating.poll(
        _batch(raw, [_subjob(n, job_id, verify=False) for n in (1, 2, 3)]), driver, params
    )
    assert isinstance(polled[3], StillRunning)
    rows = [_subjob(n, job_id, verify=True) for n in (1, 2, 3)]
    verified = await creating.verify(_batch(raw, rows, verify=True), driver, params)
    assert isinstance(verified[3], Accepted) and verified[3].cloud_job_id == job_id


async def test_a_job_that_failed_for_an_unlisted_server_gives_the_vendors_reason(
    sim: Sim, make_ecs: MakeEcs
) -> None:
    driver, raw = make_ecs(), _raw(sim, 3)
    sim.ctx.faults.add(
        parse_rule({"kind": "create_fail", "match": "huawei-ecs:create", "reason": "no capacity"})
    )
    job_id = await _created(sim, driver, raw)
    sim.advance(120)
    (broken,) = [s for s in sim.world.servers.values() if s.status == "ERROR"]
    broken.deleted_at = sim.world.clock.now()  # the failed build, deleted by its owner
    params = parse_params("create", raw)
    polled = await creating.poll(
        _batch(raw, [_subjob(n, job_id, verify=False) for n in (1, 2, 3)]), driver, params
    )
    failed = [o for o in polled.values() if isinstance(o, Failed)]
    assert len(failed) == 1 and "no capacity" in failed[0].reason
    rows = [_subjob(n, job_id, verify=True) for n in (1, 2, 3)]
    verified = await creating.verify(_batch(raw, rows, verify=True), driver, params)
    assert sum(isinstance(o, Resubmit) for o in verified.values()) == 1
