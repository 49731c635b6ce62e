"""The console, used as a person would, in headless Chromium against a live `fleet serve`."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from tests.browser.conftest import CALLED, SHOTS, XSS_NAME, Console, open_page, shot, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_sign_in_page_then_operations(
    browser: Browser, console: Console, dialogs: list[str]
) -> None:
    page = open_page(browser, dialogs)
    page.goto(console.url + "/")
    page.get_by_role("heading", name="Sign in").wait_for()
    shot(page, "01-sign-in")
    page.get_by_label("Token").fill("fleet_nope_nope")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Sign-in failed").wait_for()
    sign_in(page, console, "admin")
    page.get_by_role("heading", name="Operations").wait_for()
    assert page.evaluate("document.cookie") == ""
    assert "fleet_" not in page.url
    page.close()


def test_plan_then_run_a_reboot_in_waves(
    browser: Browser, console: Console, dialogs: list[str]
) -> None:
    page = open_page(browser, dialogs)
    sign_in(page, console, "operator")
    page.get_by_role("link", name="New operation").first.click()
    page.get_by_label("Action", exact=True).select_option("reboot")
    page.get_by_label("ecs-sim").check()
    page.get_by_label("Waves").fill("1, 50%, 100%")
    page.get_by_label("Reason").fill("monthly reboot")
    assert page.locator("#run").count() == 0  # no run before a plan
    page.get_by_role("button", name="Plan (dry run)").click()
    page.locator("#plan").wait_for()
    targets = int(page.locator("#plan-targets").inner_text())
    assert targets >= 1
    assert page.locator("#plan").get_by_text("ecs-sim:").count() >= 1  # calls per rate key
    shot(page, "02-new-operation-plan")
    page.locator("#run").click()
    page.wait_for_url(re.compile(r"#/operations/"))
    page.locator("#live").get_by_text("(100%)").wait_for()
    page.locator("#live .state").filter(has_text="succeeded").wait_for()
    rows = page.locator("#subjobs tbody tr")
    rows.first.wait_for()
    assert rows.count() >= targets  # a row per server (skipped ones too)
    # The server named like markup is a text cell, not an element.
    page.locator("#subjobs td", has_text=XSS_NAME).wait_for()
    assert page.locator("#subjobs img").count() == 0
    assert page.locator("img").count() == 0
    assert dialogs == []
    shot(page, "03-operation-done")
    page.get_by_role("link", name="Operations").first.click()
    page.locator("tbody tr").first.wait_for()
    page.get_by_label("State").select_option("succeeded")
    expect(page.locator("tbody tr").filter(has_text="dry run")).to_have_count(0)
    expect(page.locator("tbody tr").filter(has_text="monthly reboot")).to_have_count(1)
    shot(page, "04-operations")
    page.close()


def _sim(console: Console, path: str) -> dict[str, object]:
    with urllib.request.urlopen(console.live.sim_url + path, timeout=30) as resp:  # loopback
        data: dict[str, object] = json.loads(resp.read())
        return data


def test_create_servers_with_the_quota_shown_before_they_are_made(
    browser: Browser, console: Console, dialogs: list[str]
) -> None:
    need: dict[str, str] = _sim(console, "/_sim/endpoints")["openstack"]["create"]  # type: ignore[index]
    page = open_page(browser, dialogs)
    sign_in(page, console, "operator")
    page.get_by_role("link", name="New operation").first.click()
    page.get_by_label("Action", exact=True).select_option("create")
    page.get_by_label("easystack-sim").check()
    page.locator("#flavor option").nth(1).wait_for(state="attached")  # the endpoint's flavors
    page.locator("#flavor").select_option(index=1)
    page.get_by_label("Count").fill("2")
    page.get_by_label("Server name").fill("made-{n}")
    page.get_by_label("Image").fill(need["image"])
    page.get_by_label("Network").fill(need["network"])
    page.get_by_label("Tags to set or remove").fill("env=dev, expires-at=2030-01-01")
    page.get_by_role("button", name="Plan (dry run)").click()
    page.locator("#plan").wait_for()
    assert page.locator("#plan-targets").inner_text() == "2"
    quota = page.locator("#plan-quota tbody tr")
    expect(quota).to_have_count(1)
    expect(quota).to_contain_text("easystack-sim")
    cells = [quota.locator("td").nth(i).inner_text() for i in range(5)]
    used, limit, room, adds = (int(c) for c in cells[1:])
    assert room == limit - used and adds == 2
    shot(page, "19-create-plan")
    page.locator("#run").click()
    page.wait_for_url(re.compile(r"#/operations/"))
    page.locator("#live .state").filter(has_text="succeeded").wait_for()
    servers: list[dict[str, object]] = _sim(console, "/_sim/servers")["servers"]  # type: ignore[assignment]
    made = [s for s in servers if str(s["name"]).startswith("made-")]
    assert sorted(str(s["name"]) for s in made) == ["made-1", "made-2"]
    assert all(s["tags"]["expires-at"] == "2030-01-01" for s in made)  # type: ignore[index]
    assert dialogs == []
    page.close()


def _long_reboot(console: Console) -> str:
    """A reboot of two endpoints one server at a time: running long enough to be paused."""
    body = {
        "action": "reboot",
        "targets": {"endpoints": ["ecs-sim", "easystack-sim"]},
        "strategy": {"max_in_flight": 1},
        "reason": "rolling reboot",
    }
    return str(console.post("/v1/operations", body)["id"])


def test_pause_and_resume_then_watch_it_finish(
    browser: Browser, console: Console, dialogs: list[str]
) -> None:
    page = open_page(browser, dialogs)
    sign_in(page, console, "operator")
    op_id = _long_reboot(console)
    page.goto(f"{console.url}/#/operations/{op_id}")
    pause = page.get_by_role("button", name="Pause")
    expect(pause).to_be_enabled()
    pause.click()
    expect(page.locator("#live .state")).to_have_text("paused")
    resume = page.get_by_role("button", name="Resume")
    expect(resume).to_be_enabled()
    history = page.locator("#history")
    expect(history).to_contain_text("state: paused")
    shot(page, "05-operation-paused")
    resume.click()
    page.locator("#live").get_by_text("(100%)").wait_for()
    expect(page.locator("#live .state")).to_have_text("succeeded")
    expect(history).to_contain_text("end: succeeded")
    page.close()


def test_a_viewer_sees_why_it_cannot_cancel_or_run(
    browser: Browser, console: Console, dialogs: list[str]
) -> None:
    op_id = _long_reboot(console)
    page = open_page(browser, dialogs)
    sign_in(page, console, "viewer")
    page.goto(f"{console.url}/#/operations/{op_id}")
    cancel = page.get_by_role("button", name="Cancel")
    expect(cancel).to_be_disabled()
    expect(page.locator("#controls")).to_contain_text(
        "Controlling an operation needs the operator role; this token is viewer"
    )
    page.locator("#subjobs tbody tr").first.wait_for()
    shot(page, "06-operation-as-viewer")
    page.screenshot(path=str(SHOTS / "06-operation-as-viewer-1280x800.png"))  # the README's
    page.get_by_role("link", name="New operation").first.click()
    expect(page.get_by_role("button", name="Plan (dry run)")).to_be_disabled()
    expect(page.locator("main")).to_contain_text("needs the operator role")
    console.post(f"/v1/operations/{op_id}/cancel", None)
    page.close()


def test_endpoints_show_their_rate_keys(
    browser: Browser, console: Console, dialogs: list[str]
) -> None:
    page = open_page(browser, dialogs)
    sign_in(page, console, "viewer")
    page.get_by_role("link", name="Endpoints").click()
    row = page.locator("tr").filter(has_text="bms-sim:action")
    expect(row).to_contain_text("50 requests / 60 s")
    expect(page.locator("#refreshed")).to_contain_text("Refreshed")
    shot(page, "07-endpoints")
    page.set_viewport_size({"width": 420, "height": 800})  # a narrow window
    shot(page, "08-endpoints-narrow")
    page.close()


def test_policies_show_next_fires_and_run_now(
    browser: Browser, console: Console, dialogs: list[str]
) -> None:
    page = open_page(browser, dialogs)
    sign_in(page, console, "operator")
    page.get_by_role("link", name="Policies").click()
    listed = page.locator("tr").filter(has_text="nightly-stop")
    expect(listed).to_contain_text("0 20 * * 1-5 (Europe/Paris)")
    shot(page, "09-policies")
    listed.get_by_role("link", name="nightly-stop").click()
    expect(page.locator("#preview tbody tr")).to_have_count(10)
    expect(page.locator("#preview")).to_contain_text("20:00:00+01:00")
    toggle = page.get_by_role("button", name="Disable")
    expect(toggle).to_be_disabled()  # enabling and disabling is the admin's
    expect(page.locator("main")).to_contain_text("needs the admin role; this token is operator")
    page.get_by_role("button", name="Run now").click()
    expect(page.locator("#run-result")).to_contain_text("Fired")
    expect(page.locator("#fires tbody tr")).to_have_count(1)
    expect(page.locator("#fires")).to_contain_text("manual")
    shot(page, "10-policy")
    page.close()
    admin = open_page(browser, dialogs)
    sign_in(admin, console, "admin")
    admin.goto(f"{console.url}/#/policies/nightly-stop")
    admin.get_by_role("button", name="Disable").click()
    expect(admin.locator("#enabled")).to_have_text("no")
    admin.get_by_role("button", name="Enable").click()
    expect(admin.locator("#enabled")).to_have_text("yes")
    admin.close()


def test_another_token_approves_a_pending_operation(
    browser: Browser, console: Console, dialogs: list[str]
) -> None:
    """A fire of a policy that requires approval waits; its creator (the admin who ran it) sees
    why it cannot decide, an operator approves it on the operation page and it runs."""
    policy = {
        "name": "approved-reboot",
        "cron": "0 3 * * *",
        "action": "reboot",
        "targets": {"endpoints": ["ecs-sim"], "tags_all": {"role": "xss"}},
        "require_approval": True,
    }
    console.post("/v1/policies", policy)
    fire = console.post("/v1/policies/approved-reboot/run", None)["fire"]
    assert isinstance(fire, dict)
    op_id = str(fire["operation_id"])
    admin = open_page(browser, dialogs)
    sign_in(admin, console, "admin")
    admin.goto(f"{console.url}/#/operations/{op_id}")
    expect(admin.locator("#live .state")).to_have_text("pending_approval")
    expect(admin.get_by_role("button", name="Approve")).to_be_disabled()
    expect(admin.locator("#controls")).to_contain_text("another token must decide")
    admin.close()
    page = open_page(browser, dialogs)
    sign_in(page, console, "operator")
    page.goto(f"{console.url}/#/operations/{op_id}")
    expect(page.locator("#approval")).to_contain_text(
        "pending: policy approved-reboot requires approval of its fires"
    )
    shot(page, "12-operation-pending-approval")
    approve = page.get_by_role("button", name="Approve")
    expect(approve).to_be_enabled()
    approve.click()
    expect(page.locator("#approval")).to_contain_text("approved by console-operator")
    expect(page.locator("#live .state")).to_have_text("succeeded")
    expect(page.get_by_role("button", name="Reject")).to_be_disabled()
    page.close()


def test_the_dashboard_shows_what_a_stop_saved(
    browser: Browser, console: Console, dialogs: list[str]
) -> None:
    stop = {"action": "stop", "targets": {"endpoints": ["ecs-sim"], "tags_all": {"role": "xss"}}}
    created = console.post("/v1/operations", stop)
    page = open_page(browser, dialogs)
    sign_in(page, console, "viewer")
    page.get_by_role("link", name="Dashboard").click()
    page.get_by_role("heading", name="Savings, last 7 days").wait_for()
    # once the stop has finished and the leader's sweep followed it (every 2 s here); the
    # policy's run now (above) stopped servers too, in a row of its own
    ours = page.locator("#savings tbody tr").filter(has_text="(operations)")
    expect(ours.locator("td").nth(1)).to_have_text("1", timeout=60_000)
    expect(ours.locator("td").nth(3)).to_contain_text("EUR")
    expect(page.locator("#savings-total")).to_contain_text(re.compile(r"\d+\.\d\d EUR saved"))
    expect(page.locator("#drift")).to_contain_text("No drift")
    shot(page, "11-dashboard")
    page.close()
    assert created["action"] == "stop"


def test_an_admin_creates_previews_and_deletes_a_schedule(
    browser: Browser, console: Console, dialogs: list[str]
) -> None:
    """A schedule made with the form: refused with the field named when its period ends before
    it begins, then created, listed, previewed on the server tagged with it, and deleted."""
    berlin = datetime.now(ZoneInfo("Europe/Berlin")).date()
    skip = [berlin, berlin + timedelta(days=1)]  # stopped all day, whatever the hour
    page = open_page(browser, dialogs)
    sign_in(page, console, "admin")
    page.get_by_role("link", name="Schedules").click()
    page.get_by_role("heading", name="New schedule").wait_for()
    page.get_by_label("Name", exact=True).fill("office-hours")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_label("Skip dates").fill(", ".join(d.isoformat() for d in skip))
    page.locator("#period-1-begin").fill("18:00")
    page.locator("#period-1-end").fill("08:00")
    for day in ("mon", "tue", "wed", "thu", "fri"):
        page.get_by_label(f"period 1 {day}").check()
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator("#new-schedule")).to_contain_text("periods[0].endtime")
    page.locator("#period-1-begin").fill("08:00")
    page.locator("#period-1-end").fill("18:00")
    page.get_by_role("button", name="Create schedule").click()
    listed = page.locator("#schedules tr").filter(has_text="office-hours")
    expect(listed).to_contain_text("08:00-18:00 mon,tue,wed,thu,fri")
    expect(listed).to_contain_text("Europe/Berlin")
    expect(listed.locator(".state")).to_have_text("stopped")
    shot(page, "13-schedules")
    listed.get_by_role("link", name="office-hours").click()
    expect(page.locator("#state-now")).to_have_text("stopped")
    expect(page.locator("#tagged")).to_contain_text("1 server tagged fleet-schedule=office-hours")
    server = page.locator("#schedule-servers tbody tr").filter(has_text="office-desk-1")
    expect(server.locator("td").nth(3)).to_have_text("stopped")  # desired now
    expect(server.locator("td").nth(4)).to_have_text("stop")  # it runs: a policy would stop it
    expect(server.locator("td").nth(5)).to_contain_text("running at")
    expect(page.locator("#transitions tbody tr").first).to_contain_text("running")
    shot(page, "14-schedule-preview")
    edit_schedule(page, console, skip)
    stale_edit_is_refused(page, console)
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Confirm: delete").click()
    page.wait_for_url(re.compile(r"#/schedules$"))
    expect(page.locator("#schedules tr").filter(has_text="office-hours")).to_have_count(0)
    from_file = page.locator("#schedules tr").filter(has_text="night-shift")
    expect(from_file).to_contain_text("file")
    expect(from_file.get_by_role("button", name="Delete")).to_be_disabled()
    expect(from_file).to_contain_text("a schedule from a config file: edit the file to change it")
    from_file.get_by_role("link", name="night-shift").click()
    expect(page.get_by_role("button", name="Edit")).to_be_disabled()
    expect(page.locator("main .controls").first).to_contain_text("edit the file to change it")
    assert dialogs == []
    page.close()


def edit_schedule(page: Page, console: Console, skip: list[date]) -> None:
    """The schedule's page edits it with the create form, prefilled: a refusal names the field,
    a save (a PATCH of the changes, with If-Match) shows the new version and the API answers the
    change."""
    page.get_by_role("button", name="Edit").click()
    form = page.locator("#edit-schedule")
    expect(page.get_by_label("Name", exact=True)).to_have_value("office-hours")
    expect(page.get_by_label("Name", exact=True)).not_to_be_editable()
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Berlin")
    expect(page.get_by_label("Skip dates")).to_have_value(", ".join(d.isoformat() for d in skip))
    expect(page.locator("#period-1-end")).to_have_value("18:00")
    expect(page.get_by_label("period 1 fri")).to_be_checked()
    expect(page.get_by_label("period 1 sat")).not_to_be_checked()
    page.locator("#period-1-end").fill("07:00")
    page.get_by_role("button", name="Save changes").click()
    expect(form).to_contain_text("periods[0].endtime")
    page.locator("#period-1-end").fill("17:30")
    page.get_by_label("period 1 fri").uncheck()
    page.get_by_label("period 1 sat").check()
    page.get_by_role("button", name="Add period").click()
    page.get_by_role("button", name="Remove period 2").click()  # period 1 is kept as edited
    expect(form.locator("fieldset.period")).to_have_count(1)
    shot(page, "16-schedule-edit")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("main h1")).to_contain_text("api schedule, version 2")
    expect(page.locator("#periods-now")).to_have_text("08:00-17:30 mon,tue,wed,thu,sat")
    stored = console.call("GET", "/v1/schedules/office-hours")
    spec = stored["spec"]
    assert stored["version"] == 2 and isinstance(spec, dict)
    period = spec["periods"][0]
    assert (period["begintime"], period["endtime"]) == ("08:00", "17:30")
    assert period["weekdays"] == ["mon", "tue", "wed", "thu", "sat"]
    assert spec["timezone"] == "Europe/Berlin"
    assert spec["skip_dates"] == [d.isoformat() for d in skip]


def stale_edit_is_refused(page: Page, console: Console) -> None:
    """A save from a page loaded before a change made through the API is refused (409) and says
    so; the other change stays."""
    page.get_by_role("button", name="Edit").click()
    changed = console.call(
        "PATCH",
        "/v1/schedules/office-hours",
        {"description": "changed elsewhere"},
        headers={"If-Match": '"2"'},
    )
    assert changed["version"] == 3
    page.get_by_label("Description").fill("changed here")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#edit-schedule")).to_contain_text("Not saved (409)")
    expect(page.locator("#edit-schedule")).to_contain_text("version is 3, not 2")
    expect(page.locator("main h1")).to_contain_text("version 2")
    shot(page, "17-schedule-stale-edit")
    stored = console.call("GET", "/v1/schedules/office-hours")
    assert stored["version"] == 3
    assert isinstance(stored["spec"], dict) and stored["spec"]["description"] == "changed elsewhere"


def test_an_admin_creates_edits_and_deletes_a_policy(
    browser: Browser, console: Console, dialogs: list[str]
) -> None:
    page = open_page(browser, dialogs)
    sign_in(page, console, "admin")
    page.get_by_role("link", name="Policies").click()
    spec = {
        "name": "weekend-stop",
        "cron": "0 22 * * 5",
        "timezone": "Europe/Berlin",
        "action": "stop",
        "targets": {"endpoints": ["easystack-sim"], "tags_all": {"env": "test"}},
    }
    area = page.get_by_label("Policy (JSON)")
    area.fill(json.dumps({**spec, "cron": "not a cron"}))
    page.get_by_role("button", name="Create policy").click()
    expect(page.locator("#new-policy")).to_contain_text("cron")
    area.fill(json.dumps(spec))
    page.get_by_role("button", name="Create policy").click()
    page.wait_for_url(re.compile(r"#/policies/weekend-stop$"))
    expect(page.locator("main h1")).to_contain_text("api policy, version 1")
    page.locator("#edit summary").click()
    edited = page.locator("#policy-spec")
    edited.fill(json.dumps({**spec, "cron": "30 21 * * 5", "description": "earlier"}))
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("main h1")).to_contain_text("version 2")
    expect(page.locator("main")).to_contain_text("30 21 * * 5 (Europe/Berlin)")
    expect(page.locator("#preview")).to_contain_text("21:30:00")
    page.get_by_role("button", name="Disable").click()
    expect(page.locator("#enabled")).to_have_text("no")
    expect(page.locator("main h1")).to_contain_text("version 3")
    shot(page, "15-policy-edit")
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Confirm: delete").click()
    page.wait_for_url(re.compile(r"#/policies$"))
    page.locator("tr").filter(has_text="nightly-stop").first.wait_for()
    expect(page.locator("tr").filter(has_text="weekend-stop")).to_have_count(0)
    page.close()


def test_every_api_call_of_the_pages_is_documented(console: Console) -> None:
    """The pages speak only the documented API: every call the scenarios above made is a path
    and method of the OpenAPI document (run last: it checks what they recorded)."""
    request = urllib.request.Request(
        console.url + "/openapi.json",
        headers={"Authorization": f"Bearer {console.tokens['viewer']}"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:  # loopback only
        paths: dict[str, dict[str, object]] = json.loads(resp.read())["paths"]
    documented = [
        (method, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"))
        for template, methods in paths.items()
        for method in methods
    ]
    assert len(CALLED) > 10, CALLED
    for method, path in sorted(CALLED):
        if path == "/openapi.json":
            continue
        assert any(m == method and rx.match(path) for m, rx in documented), (method, path)
