"""`fleet ops approve|reject` and how the CLI shows an operation waiting for an approval."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.conftest import Api, api_settings, serving
from tests.api.test_api_approvals import running_ids, with_approvals
from tests.api.test_client import fleet


@pytest.fixture
async def api(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Api]:
    settings = with_approvals(api_settings(tmp_path, sqlite_url), max_servers=1)
    async with serving(settings) as running:
        yield running


async def _pending(api: Api, n: int) -> tuple[str, list[str]]:
    ids = await running_ids(api, n)
    argv = ["run", "stop", "--endpoint", "ecs-sim"]
    for server_id in ids:
        argv += ["--id", server_id]
    code, out, err = await fleet(api, *argv)
    assert code == 0, err
    op_id = out.split()[1]
    await api.wait_state(op_id, "pending_approval")
    return op_id, ids


async def test_show_says_why_it_waits_and_how_to_decide(api: Api) -> None:
    op_id, _ = await _pending(api, 2)
    code, out, _ = await fleet(api, "ops", "show", op_id)
    assert code == 0
    assert f"operation {op_id} (stop): pending_approval" in out
    assert "approval: pending (acts on more than 1 servers)" in out
    assert f"fleet ops approve {op_id}" in out
    code, out, _ = await fleet(api, "ops", "list", "--state", "pending_approval")
    assert code == 0 and op_id[:12] in out


async def test_approve_by_another_token_runs_it(api: Api) -> None:
    op_id, _ = await _pending(api, 2)
    code, out, err = await fleet(api, "ops", "approve", op_id)
    assert code == 2, (out, err)
    assert "created this operation" in err and "another token" in err
    code, out, err = await fleet(api, "ops", "approve", op_id, "--note", "ok", role="admin")
    assert code == 0, err
    assert out == f"operation {op_id}: running\n" or out == f"operation {op_id}: succeeded\n"
    assert (await api.wait(op_id))["state"] == "succeeded"
    code, out, _ = await fleet(api, "ops", "show", op_id)
    assert "approval: approved (acts on more than 1 servers)" in out
    assert "by admin-t at " in out and ": ok" in out


async def test_reject_ends_it(api: Api) -> None:
    op_id, ids = await _pending(api, 2)
    code, out, err = await fleet(api, "ops", "reject", op_id, "--note", "no", role="admin")
    assert code == 0, err
    assert out == f"operation {op_id}: rejected\n"
    code, out, _ = await fleet(api, "ops", "watch", op_id)
    assert code == 1  # a rejected operation did not do its work
    assert "cancelled           2" in out
    running = {str(s["id"]) for s in await api.servers("ecs-sim", status="running")}
    assert set(ids) <= running
