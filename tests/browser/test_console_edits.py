"""Edits on the console that must not lose anything: a policy's JSON being edited survives the
page's actions, and a schedule's edit sends only what the user changed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import Console, open_page, shot, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

POLICY = {
    "name": "edit-keeps",
    "cron": "0 4 * * *",
    "timezone": "UTC",
    "action": "stop",
    "targets": {"endpoints": ["ecs-sim"], "tags_all": {"env": "nowhere"}},
}
OFFICE = {"begintime": "08:00", "endtime": "18:00", "weekdays": ["mon-fri"], "description": "desk"}
SATURDAY = {"begintime": "09:00", "endtime": "12:00", "weekdays": ["Saturday"], "description": "am"}
SCHEDULE = {
    "name": "shifts",
    "timezone": "Europe/Berlin",
    "periods": [OFFICE, SATURDAY],
    "skip_dates": ["2030-12-24"],
}


def spec_in(page: Page) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(page.locator("#policy-spec").input_value())
    return data


def test_an_action_keeps_the_edit_in_progress_and_its_save_is_refused_once_stale(
    browser: Browser, console: Console, dialogs: list[str]
) -> None:
    """Run now and Disable redraw the policy's state and fires, not the editor: the JSON being
    edited stays. Disable made version 2, so the edit (begun at version 1) says at once that its
    save would be refused, and its save is refused (409) rather than re-enabling the policy."""
    console.post("/v1/policies", POLICY)
    page = open_page(browser, dialogs)
    sign_in(page, console, "admin")
    page.goto(f"{console.url}/#/policies/edit-keeps")
    expect(page.locator("main h1")).to_contain_text("api policy, version 1")
    page.locator("#edit summary").click()
    typed = json.dumps({**spec_in(page), "cron": "15 4 * * *", "description": "in progress"})
    page.locator("#policy-spec").fill(typed)
    page.get_by_role("button", name="Run now").click()
    expect(page.locator("#run-result")).to_contain_text("Fired")
    expect(page.locator("#fires tbody tr")).to_have_count(1)
    expect(page.locator("#policy-spec")).to_have_value(typed)
    expect(page.locator("#edit")).to_have_attribute("open", "")
    page.get_by_role("button", name="Disable").click()
    expect(page.locator("#enabled")).to_have_text("no")
    expect(page.locator("main h1")).to_contain_text("version 2")
    expect(page.locator("#policy-spec")).to_have_value(typed)
    drift = page.locator("#edit-drift")
    expect(drift).to_contain_text("now at version 2; this edit began at version 1")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#edit")).to_contain_text("Not saved (409)")
    expect(page.locator("#edit")).to_contain_text("version is 2, not 1")
    expect(page.locator("#policy-spec")).to_have_value(typed)
    shot(page, "18-policy-stale-edit")
    stored = console.call("GET", "/v1/policies/edit-keeps")
    assert stored["version"] == 2
    assert isinstance(stored["spec"], dict)
    assert (stored["spec"]["enabled"], stored["spec"]["cron"]) == (False, "0 4 * * *")
    page.get_by_role("button", name="Start again from version 2").click()
    assert spec_in(page)["enabled"] is False
    page.locator("#policy-spec").fill(json.dumps({**spec_in(page), "cron": "15 4 * * *"}))
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("main h1")).to_contain_text("version 3")
    expect(page.locator("#edit")).to_contain_text("Saved: version 3.")
    expect(drift).to_be_empty()
    # an editor left as it was follows the policy: after Enable it shows version 4
    page.get_by_role("button", name="Enable").click()
    expect(page.locator("main h1")).to_contain_text("version 4")
    expect(page.locator("#edit")).to_contain_text("still at version 4")
    assert spec_in(page)["enabled"] is True and spec_in(page)["cron"] == "15 4 * * *"
    assert dialogs == []
    page.close()


def test_a_schedule_edit_sends_only_what_changed(
    browser: Browser, console: Console, dialogs: list[str]
) -> None:
    """The edit is a PATCH of the changed keys: a period's description (not in the form) and
    weekdays as written ("mon-fri", "Saturday") stay as stored, and so does the rest."""
    created = console.post("/v1/schedules", SCHEDULE)
    office, saturday = created["spec"]["periods"]  # type: ignore[index]
    page = open_page(browser, dialogs)
    sent: list[tuple[str, object]] = []

    def record(request: Request) -> None:
        if urlsplit(request.url).path == "/v1/schedules/shifts" and request.method != "GET":
            sent.append((request.method, request.post_data_json))

    page.on("request", record)
    sign_in(page, console, "admin")
    page.goto(f"{console.url}/#/schedules/shifts")
    expect(page.locator("main h1")).to_contain_text("api schedule, version 1")

    page.get_by_role("button", name="Edit").click()
    page.locator("#period-1-end").fill("17:00")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("main h1")).to_contain_text("version 2")
    spec = console.call("GET", "/v1/schedules/shifts")["spec"]
    assert isinstance(spec, dict)
    assert spec["periods"] == [{**office, "endtime": "17:00"}, saturday]
    assert spec["skip_dates"] == ["2030-12-24"]
    assert sent == [("PATCH", {"periods": [{**office, "endtime": "17:00"}, saturday]})]

    page.get_by_role("button", name="Edit").click()
    page.get_by_role("button", name="Remove period 1").click()
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("main h1")).to_contain_text("version 3")
    spec = console.call("GET", "/v1/schedules/shifts")["spec"]
    assert isinstance(spec, dict) and spec["periods"] == [saturday]

    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Description").fill("shift work")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("main h1")).to_contain_text("version 4")
    assert sent[-1] == ("PATCH", {"description": "shift work"})
    spec = console.call("GET", "/v1/schedules/shifts")["spec"]
    assert isinstance(spec, dict)
    assert (spec["periods"], spec["skip_dates"]) == ([saturday], ["2030-12-24"])

    page.get_by_role("button", name="Edit").click()
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("main")).to_contain_text("Nothing to save: the form is as version 4.")
    assert len(sent) == 3
    assert console.call("GET", "/v1/schedules/shifts")["version"] == 4
    assert dialogs == []
    page.close()
