"""The CLI with unknown sub-jobs: `fleet ops show` and the progress line count them,
`fleet ops subjobs --state unknown` lists them with the reason, and `fleet ops retry-failed`
takes them only with `--include-unknown`."""

from __future__ import annotations

from fleet.cli import build_parser
from tests.api.conftest import Api
from tests.api.test_api_unknown import REASON, reboot_with_unknown
from tests.api.test_client import fleet


def test_include_unknown_is_a_flag_of_retry_failed_only() -> None:
    parser = build_parser()
    assert parser.parse_args(["ops", "retry-failed", "op"]).include_unknown is False
    assert parser.parse_args(["ops", "retry-failed", "op", "--include-unknown"]).include_unknown


async def test_ops_show_subjobs_and_retry_failed_with_unknown(api: Api) -> None:
    op_id, ids = await reboot_with_unknown(api, 3, 1)
    code, out, _ = await fleet(api, "ops", "show", op_id, role="viewer")
    assert code == 0
    assert "completed_with_failures" in out
    assert "ok 2  failed 0  unknown 1  skipped 0" in out
    assert "  unknown             1" in out.splitlines()

    code, out, _ = await fleet(api, "ops", "subjobs", op_id, "--state", "unknown", role="viewer")
    assert code == 0
    [line] = out.splitlines()[1:]
    assert f"ecs-sim/{ids[0]}" in line and "unknown" in line
    assert "engine.no_evidence" in line and REASON in line

    code, out, _ = await fleet(api, "ops", "retry-failed", op_id)
    assert code == 0
    assert out == (
        f"operation {op_id}: completed_with_failures "
        "(0 requeued; 1 unknown left: --include-unknown takes them)\n"
    )

    code, out, _ = await fleet(api, "ops", "retry-failed", op_id, "--include-unknown")
    assert code == 0 and "(1 requeued)" in out
    final = await api.wait(op_id)
    assert final["state"] == "succeeded"
    code, out, _ = await fleet(api, "ops", "watch", op_id, role="viewer")
    assert code == 0


async def test_watch_exits_1_when_a_sub_job_is_unknown(api: Api) -> None:
    op_id, _ = await reboot_with_unknown(api, 2, 1)
    code, out, err = await fleet(api, "ops", "watch", op_id, role="viewer")
    assert code == 1
    assert "unknown             1" in out
    assert "unknown 1" in err.splitlines()[-1]
