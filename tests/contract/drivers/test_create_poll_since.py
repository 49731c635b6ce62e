"""A Nova create's poll reads the servers changed since its calls were accepted (`changes-since`),
not every server the operation made: a poll of the last calls of a 1,000-server create lists
those calls' servers. A planned server that listing lacks is looked for in the whole listing, so
a missing time or a clock that moved back costs a listing, never a wrong outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fleet.domain import Action, ActionParams
from fleet.drivers.nova.driver import OpenStackDriver
from fleet.engine import creating
from fleet.engine.opspec import parse_params
from jobs.outcomes import Accepted, Completed, StillRunning
from jobs.records import Batch, SubJobRecord
from jobs.states import State
from tests.contract.drivers.conftest import MakeOs, calls
from tests.simulator_fixtures import Sim

OP = "0123456789abcdef0123456789abcdef"
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _raw(sim: Sim) -> dict[str, Any]:
    from fleet.simulator.control import create_needs

    need: dict[str, Any] = create_needs(sim.ctx)["openstack"]
    return {
        "count": 3,
        "name": "web-{n}",
        "flavor": need["flavor"],
        "image": need["image"],
        "network": need["network"],
        "availability_zone": need["availability_zone"],
    }


def _row(n: int, memo: dict[str, Any] | None = None) -> SubJobRecord:
    return SubJobRecord(
        id=n, operation_id=OP, seq=n, target_id=f"es/web-{n}", kind="create",
        rate_key="es:create", batch_key=f"es:create:{n}",
        payload={"endpoint": "es", "server_id": "", "slot": n, "name": f"web-{n}",
                 "recipe": "create"},
        memo=memo, state=State.AWAITING if memo else State.PENDING, step=0, attempt=1,
        throttles=0, not_before=T0, verify_first=False, cloud_job_id=None, request_id=None,
        accepted_at=None, error_code=None, error_message=None, reason=None, lease_owner=None,
        lease_expires_at=None, call_id=None, created_at=T0, updated_at=T0,
    )  # fmt: skip


def _batch(raw: dict[str, Any], rows: list[SubJobRecord]) -> Batch:
    return Batch(OP, "create", 0, "es:create", "es:create:0", raw, tuple(rows))


async def _create(driver: OpenStackDriver, raw: dict[str, Any], n: int) -> dict[str, Any]:
    """One accepted create of planned server `n`; the memo its sub-job keeps."""
    outcomes = await creating.submit(_batch(raw, [_row(n)]), driver, parse_params("create", raw), 0)
    accepted = outcomes[n]
    assert isinstance(accepted, Accepted) and accepted.memo is not None
    return dict(accepted.memo)


async def test_a_poll_lists_the_servers_changed_since_its_calls(sim: Sim, make_os: MakeOs) -> None:
    driver, raw = make_os(), _raw(sim)
    first = await _create(driver, raw, 1)
    sim.advance(600)  # web-1 is ACTIVE long before the next call
    second = await _create(driver, raw, 2)
    assert isinstance(second.get("since"), str)  # the cloud's clock at acceptance is kept
    params = parse_params("create", raw)
    before = len(calls(sim, "GET", "/servers/detail"))
    polled = await creating.poll(_batch(raw, [_row(2, second)]), driver, params)
    assert isinstance(polled[2], StillRunning)  # listed, still building
    sent = calls(sim, "GET", "/servers/detail")[before:]
    assert len(sent) == 1  # one listing, no second one for the whole operation
    assert "changes-since" in parse_qs(str(sent[0].get("query") or ""))
    sim.advance(600)
    polled = await creating.poll(_batch(raw, [_row(2, second)]), driver, params)
    assert isinstance(polled[2], Completed) and "web-2" in polled[2].reason
    both = await creating.poll(_batch(raw, [_row(1, first), _row(2, second)]), driver, params)
    assert all(isinstance(o, Completed) for o in both.values())


async def test_a_server_the_recent_listing_lacks_is_read_in_the_whole_listing(
    sim: Sim, make_os: MakeOs
) -> None:
    driver, raw = make_os(), _raw(sim)
    memo = await _create(driver, raw, 1)
    sim.advance(600)
    # a time ahead of the cloud's (a clock that moved): the recent listing cannot show web-1
    ahead = {**memo, "since": "2099-01-01T00:00:00+00:00"}
    params = parse_params("create", raw)
    before = len(calls(sim, "GET", "/servers/detail"))
    polled = await creating.poll(_batch(raw, [_row(1, ahead)]), driver, params)
    assert isinstance(polled[1], Completed) and "web-1" in polled[1].reason
    queries = [
        parse_qs(str(e.get("query") or "")) for e in calls(sim, "GET", "/servers/detail")[before:]
    ]
    assert ["changes-since" in q for q in queries] == [True, False]


async def test_a_deleted_server_is_not_taken_from_a_recent_listing(
    sim: Sim, make_os: MakeOs
) -> None:
    driver, raw = make_os(), _raw(sim)
    memo = await _create(driver, raw, 1)
    sim.advance(600)
    (server,) = [s for s in sim.world.servers.values() if s.name == "web-1"]
    await driver.submit(Action.DELETE, [server.id], ActionParams())
    sim.advance(600)
    assert server.status == "DELETED" and server.deleted_at is not None
    polled = await creating.poll(_batch(raw, [_row(1, memo)]), driver, parse_params("create", raw))
    # as without the time: not listed, no job to ask, so still being made (never "deleted" from
    # a listing that shows deleted servers only because it asked for changes)
    assert isinstance(polled[1], StillRunning)
