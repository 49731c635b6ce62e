"""`fleet webhooks create | list | show | update | deliveries | test | delete` against a live
service in this process, with a real receiver on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.conftest import Api, api_settings, serving
from tests.api.test_client import fleet
from tests.webhook_receiver import SECRET, Receiver, verify


@pytest.fixture
async def hooked(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Api, Receiver]]:
    monkeypatch.setenv("FLEET_TEST_WHSEC", SECRET)
    receiver = Receiver()
    await receiver.start()
    try:
        async with serving(api_settings(tmp_path, sqlite_url)) as api:
            yield api, receiver
    finally:
        await receiver.stop()


async def test_the_webhooks_commands_round_trip(hooked: tuple[Api, Receiver]) -> None:
    api, receiver = hooked
    code, out, err = await fleet(
        api, "webhooks", "create", "--to", receiver.url, "--events", "fleet.policy.fired,fleet.operation.finished",
        "--secret", "env:FLEET_TEST_WHSEC", "--filter-endpoint", "ecs-sim", "--json", role="admin",
    )  # fmt: skip
    assert code == 0, err
    created = json.loads(out)
    hook_id = created["id"]
    assert created["events"] == ["fleet.policy.fired", "fleet.operation.finished"]
    assert created["secret"] == "set" and created["filter"] == {"endpoint": ["ecs-sim"]}
    code, out, err = await fleet(api, "webhooks", "list", role="admin")
    assert code == 0 and hook_id in out and "endpoint=ecs-sim" in out, err
    code, out, err = await fleet(api, "webhooks", "show", hook_id, role="admin")
    assert code == 0 and "secret:  set (write-only)" in out and "FLEET_TEST_WHSEC" not in out
    code, out, err = await fleet(
        api, "webhooks", "update", hook_id, "--no-filter", "--disable", role="admin"
    )
    assert code == 0 and "(disabled)" in out and "filter:  -" in out, err
    code, out, err = await fleet(api, "webhooks", "test", hook_id, role="admin")
    assert code == 0 and ": delivered (HTTP 200, " in out, err
    assert verify(receiver.got[0])["type"] == "fleet.webhook.test"
    code, out, err = await fleet(api, "webhooks", "deliveries", hook_id, role="admin")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split()[:6] == ["id", "type", "subject", "status", "tries", "code"]
    assert "fleet.webhook.test" in row and "delivered" in row and " 200 " in row
    receiver.answers = [500]
    code, out, err = await fleet(api, "webhooks", "test", hook_id, role="admin")
    assert code == 1 and "failed (HTTP 500" in out
    code, out, err = await fleet(api, "webhooks", "delete", hook_id, role="admin")
    assert code == 0 and out.startswith("deleted webhook")
    code, out, err = await fleet(api, "webhooks", "show", hook_id, role="admin")
    assert code == 2 and "404" in err


async def test_a_literal_secret_or_a_non_admin_is_refused(hooked: tuple[Api, Receiver]) -> None:
    api, receiver = hooked
    code, _, err = await fleet(
        api,
        "webhooks",
        "create",
        "--to",
        receiver.url,
        "--events",
        "*",
        "--secret",
        SECRET,
        role="admin",
    )
    assert code == 2 and "422: secret: a literal secret is never stored" in err
    assert SECRET not in err
    code, _, err = await fleet(api, "webhooks", "list", role="operator")
    assert code == 2 and "403" in err
    code, _, err = await fleet(api, "webhooks", "update", "abc", role="admin")
    assert code == 2 and "nothing to change" in err
