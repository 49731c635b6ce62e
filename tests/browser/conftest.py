"""The console in a real headless Chromium (Debian's `chromium`, driven by Playwright).

The browser is the system's: `scripts/ensure-chromium.sh` (run by `make test`) installs it when
it is missing and the command runs as root. Without it, or without Playwright, these tests skip
and say why. One `fleet serve` with the embedded simulator serves every test of the module; the
world holds a server whose name is markup, to prove names are rendered as text, and one tagged
`fleet-schedule=office-hours` for the schedules page.

Screenshots of every page land in `var/screenshots/console/` (or `$FLEET_SCREENSHOTS`); the run's
summary prints the folder.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.api.live import ROOT, Live, live_service

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

XSS_NAME = "<img src=x onerror=alert(1)>"
WORLD = f"""
seed = 5
[generate]
ecs = 11
bms = 4
openstack = 6
[[servers]]
name = {json.dumps(XSS_NAME)}
kind = "ecs"
tags = {{ role = "xss" }}
[[servers]]
name = "office-desk-1"
kind = "bms"
tags = {{ fleet-schedule = "office-hours" }}
"""
POLICY = {
    "name": "nightly-stop",
    "description": "stop the dev servers every evening",
    "cron": "0 20 * * 1-5",
    "timezone": "Europe/Paris",
    "action": "stop",
    "targets": {"endpoints": ["easystack-sim"], "tags_all": {"env": "dev"}},
}
FILE_SCHEDULE = """
[[schedules]]
name = "night-shift"
timezone = "Asia/Shanghai"
[[schedules.periods]]
begintime = "22:00"
"""
SHOTS = Path(os.environ.get("FLEET_SCREENSHOTS") or ROOT / "var" / "screenshots" / "console")
WAIT = 30_000  # ms: the longest wait for anything the service does


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SHOTS.is_dir() and any(SHOTS.iterdir()):
        terminalreporter.write_line(f"console screenshots: {SHOTS}")


def _call(
    live: Live, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
) -> dict[str, object]:
    request = urllib.request.Request(
        live.url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={
            "Authorization": f"Bearer {live.token}",
            "Content-Type": "application/json",
            **(headers or {}),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as resp:  # loopback only
        data: dict[str, object] = json.loads(resp.read())
        return data


class Console:
    """The live service, a token per role, and where screenshots go."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.url = live.url
        self.tokens = {"admin": live.token}
        for role in ("viewer", "operator"):
            made = _call(live, "POST", "/v1/tokens", {"name": f"console-{role}", "role": role})
            self.tokens[role] = str(made["token"])
        _call(live, "POST", "/v1/policies", POLICY)

    def post(self, path: str, body: object) -> dict[str, object]:
        return _call(self.live, "POST", path, body)

    def call(
        self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
    ) -> dict[str, object]:
        """An admin's API call (an HTTP error raises `urllib.error.HTTPError`)."""
        return _call(self.live, method, path, body, headers)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    pytest.importorskip("playwright.sync_api", reason="Playwright (a dev dependency) is missing")
    if chromium_path() is None:
        why = "Chromium not found: install the chromium package (make test does, as root)"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI runs as root: scripts/ensure-chromium.sh must have installed it
        pytest.skip(why)
    work = tmp_path_factory.mktemp("console")
    world = work / "world.toml"
    world.write_text(WORLD, encoding="utf-8")
    files = work / "policies.toml"
    files.write_text(FILE_SCHEDULE, encoding="utf-8")
    env = {
        "FLEET_SIMULATOR__WORLD": json.dumps(str(world)),
        "FLEET_POLICIES__FILES": json.dumps([str(files)]),
        # the leader's sweep (which also follows finished stops for the savings) every 2 s
        "FLEET_POLICIES__SWEEP_INTERVAL": "2",
        "FLEET_PRICES__CURRENCY": '"EUR"',
        "FLEET_PRICES__HOURLY__ECS-SIM__*": "36",  # 36 EUR an hour: 0.01 EUR a second
    }
    SHOTS.mkdir(parents=True, exist_ok=True)
    with live_service(work, env) as live:
        yield Console(live)


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


CALLED: set[tuple[str, str]] = set()  # (method, path) of every API call a page made


def open_page(browser: Browser, dialogs: list[str], width: int = 1280) -> Page:
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.set_default_timeout(WAIT)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", _record)
    return page


def _record(request: object) -> None:
    path = urlsplit(request.url).path  # type: ignore[attr-defined]
    if path.startswith("/v1/") or path == "/openapi.json":
        CALLED.add((request.method.lower(), path))  # type: ignore[attr-defined]


def sign_in(page: Page, console: Console, role: str) -> None:
    page.goto(console.url + "/")
    page.get_by_label("Token").fill(console.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    page.locator("#whoami").filter(has_text=f"({role})").wait_for()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
