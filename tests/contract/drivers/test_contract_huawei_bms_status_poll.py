"""HuaweiBmsDriver.poll of a submission without a cloud job (what the engine polls after verifying
a call mid-transition): each server's status is read through the v1 show, as ECS does."""

from __future__ import annotations

from fleet.domain import Action, ActionParams, PowerType
from fleet.drivers.base import OutcomeState, Submission
from tests.contract.drivers.conftest import MakeBms, MakeEcs, calls, pick
from tests.simulator_fixtures import Sim

OS = OutcomeState


async def test_poll_without_a_job_id_reads_each_server_status(sim: Sim, make_bms: MakeBms) -> None:
    settled, moving = pick(sim, "bms", "ACTIVE", 2)
    driver = make_bms()
    params = ActionParams(type=PowerType.SOFT)
    await driver.submit(Action.STOP, [settled], params)
    sim.advance(300)  # `settled` reaches SHUTOFF
    await driver.submit(Action.STOP, [moving], params)  # `moving` stays in transition
    assert sim.world.servers[settled].status == "SHUTOFF"
    assert sim.world.servers[moving].busy
    jobs_before = len(calls(sim, "GET", "/jobs/"))
    missing = "0" * 8 + "-0000-0000-0000-" + "0" * 12

    status_sub = Submission(Action.STOP, (settled, moving, missing), "show")
    result = await driver.poll(status_sub)
    assert result.outcomes[settled].state is OS.DONE
    assert result.outcomes[moving].state is OS.RUNNING
    gone = result.outcomes[missing]
    assert (gone.state, gone.kind) == (OS.FAILED, "not_found")
    assert not result.finished

    shows = [c for c in sim.requests() if str(c["path"]).endswith(f"/baremetalservers/{moving}")]
    assert shows and {c["rate_key"] for c in shows} == {"huawei-bms:show"}
    assert len(calls(sim, "GET", "/jobs/")) == jobs_before  # no job to poll

    sim.advance(300)
    result = await driver.poll(Submission(Action.STOP, (settled, moving), "show"))
    assert {o.state for o in result.outcomes.values()} == {OS.DONE}
    assert result.finished


async def test_an_ecs_delete_polled_by_status_is_done_once_the_server_is_gone(
    sim: Sim, make_ecs: MakeEcs
) -> None:
    """A delete verified mid-transition is followed by status: a server that is gone is the
    delete done (as on Nova), while a stop's server that is gone is a failure."""
    missing = "0" * 8 + "-0000-0000-0000-" + "0" * 12
    driver = make_ecs()
    deleted = await driver.poll(Submission(Action.DELETE, (missing,), "show"))
    assert deleted.outcomes[missing].state is OS.DONE
    stopped = await driver.poll(Submission(Action.STOP, (missing,), "show"))
    assert (stopped.outcomes[missing].state, stopped.outcomes[missing].kind) == (
        OS.FAILED,
        "not_found",
    )
