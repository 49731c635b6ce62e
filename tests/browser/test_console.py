"""The console, used as a person would, in headless Chromium against a live `fleet serve`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import SHOTS, XSS_NAME, Console, chromium_path

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
WAIT = 30_000  # ms: the longest wait for anything the service does


@pytest.fixture(scope="module")
def browser(console: Console) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


@pytest.fixture
def dialogs() -> list[str]:
    return []


def open_page(browser: Browser, dialogs: list[str], width: int = 1280) -> Page:
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.set_default_timeout(WAIT)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return page


def sign_in(page: Page, console: Console, role: str) -> None:
    page.goto(console.url + "/")
    page.get_by_label("Token").fill(console.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    page.locator("#whoami").filter(has_text=f"({role})").wait_for()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


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
    page.locator("tbody tr").filter(has_text="monthly reboot").wait_for()
    shot(page, "04-operations")
    page.close()
