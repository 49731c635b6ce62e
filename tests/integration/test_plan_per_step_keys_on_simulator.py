"""The plan of a multi-step action counts each step's calls on the rate key it is sent on, for
the servers it applies to: an ECS resize stops and starts only the running servers (on
`{endpoint}:action`) and resizes every server (on `{endpoint}:resize`); its compensation is never
on the way of a success. The simulator's request log is the witness that a real run sends exactly
what the dry run planned."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fleet.domain import ServerStatus
from jobs.records import NewOperation, PlanSummary
from jobs.states import OperationState
from tests.integration.test_operations_on_simulator import (
    other_flavor,
    pick,
    running,
    subjobs,
    wait_terminal,
)

ENDPOINT = "ecs-sim"


def calls_per_key(summary: PlanSummary | None) -> dict[str, int]:
    assert summary is not None
    return {k.rate_key: k.calls for k in summary.rate_keys}


async def test_an_ecs_resize_plan_counts_each_step_on_its_key_as_the_run_sends_it(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (fleet, sim):
        ups = await pick(fleet, sim, ENDPOINT, ServerStatus.RUNNING, 3)
        downs = await pick(fleet, sim, ENDPOINT, ServerStatus.STOPPED, 3)
        servers = [*ups, *downs]
        flavor = await other_flavor(fleet, ENDPOINT, servers)

        def resize(dry_run: bool) -> NewOperation:
            return NewOperation(
                kind="resize",
                params={"flavor": flavor},
                selector={"endpoints": [ENDPOINT], "ids": [s.id for s in servers]},
                dry_run=dry_run,
                reason="test",
                created_by="tests",
            )

        view, _ = await fleet.operations.create(resize(dry_run=True))
        await wait_terminal(fleet, view.operation.id)
        plan = await fleet.operations.plan(view.operation.id)
        assert plan is not None and plan.targets == 6
        keys = {k.rate_key: k for k in plan.rate_keys}
        assert set(keys) == {f"{ENDPOINT}:action", f"{ENDPOINT}:resize"}
        action, resized = keys[f"{ENDPOINT}:action"], keys[f"{ENDPOINT}:resize"]
        # the 3 running servers: one batch stop and one batch start; the stopped ones: nothing
        assert (action.servers, action.calls) == (3, 2)
        # all 6 resized, one server per call (no compensation counted)
        assert (resized.servers, resized.calls) == (6, 6)

        # the same resize for real: the cloud receives what the plan counted, key by key
        first = await sim.last_seq()
        view, _ = await fleet.operations.create(resize(dry_run=False))
        op_id = view.operation.id
        done = await wait_terminal(fleet, op_id)
        assert done.state is OperationState.SUCCEEDED, await subjobs(fleet, op_id)
        assert calls_per_key(done.operation.summary) == calls_per_key(plan)

        log = await sim.requests(since=first)
        # the simulator names a key by dialect (huawei-ecs:resize), the service by endpoint
        sent = Counter(str(e["rate_key"]).split(":", 1)[1] for e in log)
        planned = {key.split(":", 1)[1]: calls for key, calls in calls_per_key(plan).items()}
        assert {api: sent[api] for api in planned} == planned, log
