"""The evidence rule for a send that may or may not have reached the cloud: a reboot is judged by
the server's action history against the cloud's clock read before the send, never by anything
else done to the server in between (a tag edited by a person, another operation)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from fleet.domain import Action, ActionParams, Provider, ServerRef, ServerStatus
from fleet.drivers.actions import Capabilities
from fleet.drivers.base import Driver, InstanceAction
from fleet.drivers.registry import DECLARATIONS
from fleet.engine.evidence import NO_CLOCK, NO_RECORD, Seen, judge
from fleet.engine.executor import FleetExecutor
from jobs.outcomes import Completed, Outcome, Resubmit, Unknown
from jobs.records import Batch
from jobs.testing import subjob_record
from tests.fake_driver import FakeDriver

AT = datetime(2026, 5, 1, 8, 0, 0, tzinfo=UTC)


def rec(action: str, seconds: float) -> InstanceAction:
    return InstanceAction(action, AT + timedelta(seconds=seconds), "req-1")


def test_a_record_of_the_kind_at_or_after_the_send_is_evidence() -> None:
    assert judge([rec("reboot", 0)], "reboot", AT)[0] is Seen.SEEN
    assert judge([rec("stop", -5), rec("reboot", 3.5)], "reboot", AT)[0] is Seen.SEEN


def test_a_record_before_the_send_or_of_another_kind_is_not() -> None:
    seen, why = judge([rec("reboot", -0.5), rec("stop", 10)], "reboot", AT)
    assert seen is Seen.NOT_SEEN and "no reboot" in why
    assert judge([], "reboot", AT)[0] is Seen.NOT_SEEN


def test_no_history_or_no_clock_is_no_evidence() -> None:
    assert judge(None, "reboot", AT) == (Seen.NO_EVIDENCE, NO_RECORD)
    assert judge([rec("reboot", 1)], "reboot", None) == (Seen.NO_EVIDENCE, NO_CLOCK)


REBOOTING = [c for c in DECLARATIONS if c.has("reboot")]
SKEWS = [timedelta(hours=-3), timedelta(0), timedelta(hours=3)]


def cloud(caps: Capabilities, skew: timedelta) -> FakeDriver:
    """A cloud whose clock is `skew` away from this host's."""
    server = ServerRef(
        "e", Provider.OPENSTACK, "s1", "web-1", ServerStatus.RUNNING, tags={}, updated="t0"
    )
    driver = FakeDriver("e", caps, [server])
    driver.now = datetime.now(UTC) + skew
    driver.answered = True
    return driver


async def verify(driver: FakeDriver, sent_after: datetime | None) -> Outcome:
    """What the executor decides for a reboot whose send may have reached the cloud."""
    payload = {"endpoint": "e", "server_id": "s1", "recipe": "reboot", "status": "ACTIVE"}
    sj = subjob_record(kind="reboot", verify_first=True, sent_after=sent_after, payload=payload)
    batch = Batch("op", "reboot", 0, "e:action", "b", {}, (sj,), verify=True)
    executor = FleetExecutor({"e": cast(Driver, driver)})
    return (await executor.verify(batch))[sj.id]


def edit_tags(driver: FakeDriver) -> None:
    """A person edits the server's tags: its `updated` stamp moves, no action is recorded."""
    before = driver.servers["s1"]
    driver.servers["s1"] = replace(before, tags={"owner": "ops"}, updated="t-edited")


def ids(caps: Capabilities, skew: timedelta) -> str:
    return f"{caps.dialect}-skew{int(skew.total_seconds() // 3600):+d}h"


CASES = [(c, s) for c in REBOOTING for s in SKEWS]


@pytest.mark.parametrize(("caps", "skew"), CASES, ids=[ids(c, s) for c, s in CASES])
async def test_a_reboot_that_reached_the_cloud_is_succeeded(
    caps: Capabilities, skew: timedelta
) -> None:
    driver = cloud(caps, skew)
    floor = await driver.cloud_clock()  # read before the claim of the send
    driver.tick(0.4)
    await driver.submit(Action.REBOOT, ["s1"], ActionParams())  # performed; the answer lost
    driver.tick(1)
    edit_tags(driver)
    assert isinstance(await verify(driver, floor), Completed)


@pytest.mark.parametrize(("caps", "skew"), CASES, ids=[ids(c, s) for c, s in CASES])
async def test_a_reboot_never_sent_is_not_succeeded_by_a_tag_edit(
    caps: Capabilities, skew: timedelta
) -> None:
    driver = cloud(caps, skew)
    driver.record("s1", "reboot")  # an earlier reboot, before the send
    driver.tick(2)
    floor = await driver.cloud_clock()
    driver.tick(1)
    edit_tags(driver)  # the only change after the send: the call itself was dropped
    out = await verify(driver, floor)
    assert isinstance(out, Resubmit), out
    assert not driver.calls


@pytest.mark.parametrize("caps", REBOOTING, ids=[c.dialect for c in REBOOTING])
async def test_without_a_history_the_reboot_is_unknown_never_resent(caps: Capabilities) -> None:
    driver = cloud(caps, timedelta(0))
    driver.history = None  # a cloud that does not serve os-instance-actions
    floor = await driver.cloud_clock()
    driver.tick(1)
    await driver.submit(Action.REBOOT, ["s1"], ActionParams())
    out = await verify(driver, floor)
    assert isinstance(out, Unknown) and out.reason == NO_RECORD, out
    # without the cloud's clock from before the send, the history proves nothing either
    driver.history = {}
    driver.record("s1", "reboot")
    out = await verify(driver, None)
    assert isinstance(out, Unknown) and out.reason == NO_CLOCK, out
