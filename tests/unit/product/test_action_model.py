"""Every (dialect, action) pair through admission, the planner and the executor, with the
declarations as the only source of what an action means; and the API's, the CLI's and the docs'
lists derived from them."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest

from fleet.api.schemas import ActionName
from fleet.cli import build_parser
from fleet.domain import Provider, ServerRef, ServerStatus
from fleet.drivers.actions import Capabilities, Evidence, Goal
from fleet.drivers.base import Driver
from fleet.drivers.nova.capabilities import capabilities_for
from fleet.drivers.nova.requests import EASYSTACK_QUIRKS, discovered
from fleet.drivers.registry import DECLARATIONS, KINDS, capability_table
from fleet.engine.admission import ActRequest, Admission
from fleet.engine.executor import FleetExecutor
from fleet.engine.opspec import parse_params
from fleet.engine.planner import FleetPlanner
from jobs.errors import FieldError
from jobs.outcomes import Accepted, Advance, Completed, Outcome
from jobs.ports import PlanItem
from jobs.records import Batch, NewOperation, OperationRecord
from jobs.testing import subjob_record
from tests.fake_driver import FakeDriver

S = ServerStatus
ROOT = Path(__file__).resolve().parents[3]
PARAMS: dict[str, dict[str, object]] = {
    "stop": {}, "start": {}, "reboot": {}, "delete": {},
    "resize": {"flavor": "large"}, "tag_add": {"tags": {"team": "a"}},
    "tag_remove": {"tags": {"old": ""}},
    "create": {
        "count": 1, "name": "new-{n}", "flavor": "large", "image": "img", "network": "net",
        "vpc": "vpc-1", "availability_zone": "az-1", "tags": {"team": "a"},
    },
}  # fmt: skip
START_STATUS = {"start": S.STOPPED}


def server(kind: str) -> ServerRef:
    status = START_STATUS.get(kind, S.RUNNING)
    return ServerRef(
        "e", Provider.OPENSTACK, "s1", "web-1", status, flavor="f-small",
        tags={"old": "x"}, updated="t0",
    )  # fmt: skip


def record(new: NewOperation) -> OperationRecord:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    return OperationRecord(
        id="op", kind=new.kind, params=new.params, selector=new.selector,
        strategy=new.strategy, guard=new.guard, dry_run=False, reason="", created_by="t",
        idempotency_key=None, created_at=now, updated_at=now, planned_at=None,
        refused_reason=None, plan_attempts=0, targets=0, skipped=0, rate_keys=(), summary=None,
        current_wave=0, paused=False, cancel_requested=False, cancelled_by=None,
        halted_reason=None, finished_at=None,
    )  # fmt: skip


async def run_steps(executor: FleetExecutor, new: NewOperation, item: PlanItem) -> Outcome:
    """Drive one planned server through its recipe: submit, poll, next step, until the end."""
    step, rate_key, batch_key = 0, item.rate_key, item.batch_key
    for _ in range(8):
        sj = subjob_record(
            target_id=item.target_id, kind=new.kind, payload=dict(item.payload), step=step
        )
        batch = Batch("op", new.kind, step, rate_key, batch_key, new.params, (sj,))
        out = (await executor.submit(batch))[sj.id]
        if isinstance(out, Accepted):
            out = (await executor.poll(batch))[sj.id]
        if not isinstance(out, Advance):
            return out
        step, rate_key, batch_key = out.next_step, out.rate_key or rate_key, out.batch_key or ""
    raise AssertionError("the recipe did not end")


PAIRS = [(caps, kind) for caps in DECLARATIONS for kind in KINDS]


@pytest.mark.parametrize(("caps", "kind"), PAIRS, ids=[f"{c.dialect}-{k}" for c, k in PAIRS])
async def test_every_dialect_and_action_through_admission_plan_and_executor(
    caps: Capabilities, kind: str
) -> None:
    driver = FakeDriver("e", caps, [server(kind)])
    drivers = {"e": cast(Driver, driver)}
    admission = Admission(drivers)
    request = ActRequest(kind, {"endpoints": ["e"]}, PARAMS[kind], admin=True)
    if not caps.has(kind):
        with pytest.raises(FieldError) as refused:
            await admission.admit(request)
        assert refused.value.field == "targets.endpoints[0]"
        assert not driver.calls
        return
    new = await admission.admit(request)
    items = [e async for e in FleetPlanner(drivers).plan(record(new)) if isinstance(e, PlanItem)]
    assert len(items) == 1 and items[0].skip_reason is None, items
    out = await run_steps(FleetExecutor(drivers), new, items[0])
    assert isinstance(out, Completed), out
    if caps.creates(kind):  # a new server, with the operation's identity tag, nothing else
        (made,) = driver.creates
        assert (made.count, made.flavor, made.tags) == (
            1,
            "f-large",
            {"team": "a", "fleet-op": "op"},
        )
        assert [s.name for s in driver.servers.values() if s.tags.get("fleet-op") == "op"] == [
            made.name
        ]
        return
    after = driver.servers["s1"]
    main = caps.spec(caps.offer(kind).main)
    wanted = parse_params(kind, PARAMS[kind])
    if wanted.flavor is not None:  # asked for by name, sent as the endpoint's id
        wanted = replace(wanted, flavor="f-large")
        assert after.flavor == "f-large"
    assert main.reached(after, wanted) or main.leads_to is after.status
    assert driver.calls, "an action that did nothing does not complete"
    # planned again, the server needs nothing (what the dialect declares it leads to)
    again = [e async for e in FleetPlanner(drivers).plan(record(new)) if isinstance(e, PlanItem)]
    if kind != "reboot":
        assert again[0].skip_reason is not None, again


async def test_a_dialect_without_the_action_is_skipped_when_not_named() -> None:
    """Two endpoints, one without tags: unnamed, its servers are skipped with the reason."""
    easystack = capabilities_for(discovered(EASYSTACK_QUIRKS, False, "2.25"))  # no tag API
    ecs = next(c for c in DECLARATIONS if c.has("tag_add"))
    drivers = {
        "a": cast(Driver, FakeDriver("a", ecs, [server("tag_add")])),
        "b": cast(Driver, FakeDriver("b", easystack, [server("tag_add")])),
    }
    new = await Admission(drivers).admit(
        ActRequest("tag_add", {"name": "web-*"}, PARAMS["tag_add"])
    )
    items = [e async for e in FleetPlanner(drivers).plan(record(new)) if isinstance(e, PlanItem)]
    reasons = sorted(str(i.skip_reason) for i in items)
    assert reasons[0] == "None" and reasons[1].startswith("unsupported: EasyStack"), reasons


def test_the_api_cli_and_docs_list_the_declared_actions() -> None:
    from fleet.api.schemas import CreateOperationIn

    schema = CreateOperationIn.model_json_schema()["properties"]["action"]
    assert schema["enum"] == list(KINDS)
    assert ActionName.__origin__ is str  # type: ignore[attr-defined]
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    action = next(a for a in run._actions if a.dest == "action")
    assert tuple(action.choices) == KINDS
    docs = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    table = docs.split("<!-- capabilities -->\n", 1)[1].split("\n<!-- /capabilities -->", 1)[0]
    assert table == capability_table()


@pytest.mark.parametrize("caps", DECLARATIONS, ids=[c.dialect for c in DECLARATIONS])
def test_where_a_call_settles_agrees_with_the_status_polls(caps: Capabilities) -> None:
    """The executor judges a call that may have reached the cloud by the declaration
    (`settled_there`); the drivers' status polls by their own table: they must agree."""
    from fleet.drivers.base import OutcomeState
    from fleet.drivers.novacommon import server_outcome

    statuses = [s for s in S if s is not S.UNKNOWN]
    for spec in caps.actions.values():
        if spec.evidence is Evidence.ANSWER or spec.goal in (Goal.FLAVOR, Goal.CREATED):
            # tags answer when done; a resize is judged by its flavor; a create by the
            # operation's listing (`fleet.engine.creating.state_of`)
            continue
        for status, task, fault in itertools.product(statuses, (None, "x"), (None, "boom")):
            server = ServerRef("e", Provider.OPENSTACK, "s", "n", status, task_state=task,
                               fault=fault)  # fmt: skip
            polled = server_outcome(spec.action, server, None).state is OutcomeState.DONE
            assert spec.settled_there(server) is polled, (spec.action, status, task, fault)
