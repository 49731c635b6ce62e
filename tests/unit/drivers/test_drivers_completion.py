"""Completion: Huawei jobs' sub_jobs per server; Nova servers read until they settle."""

from __future__ import annotations

from fleet.domain import Action, Provider, ServerRef, ServerStatus
from fleet.drivers.base import OutcomeState, Submission
from fleet.drivers.huawei.jobs import parse_job
from fleet.drivers.novacommon import parse_server, server_outcome, tags_to_remove

S = ServerStatus
DONE, FAILED, RUNNING = OutcomeState.DONE, OutcomeState.FAILED, OutcomeState.RUNNING


def _sub(
    sid: str, status: str, code: str | None = None, reason: str | None = None
) -> dict[str, object]:
    return {
        "status": status,
        "entities": {"server_id": sid},
        "job_id": f"sub-{sid}",
        "error_code": code,
        "fail_reason": reason,
    }


def test_job_with_per_server_sub_jobs() -> None:
    body = {
        "status": "RUNNING",
        "job_id": "j1",
        "entities": {
            "sub_jobs_total": 3,
            "sub_jobs": [
                _sub("a", "SUCCESS"),
                _sub("b", "FAIL", "Ecs.0226", "Failed to start."),
                _sub("c", "RUNNING"),
            ],
        },
    }
    result = parse_job(body, ["a", "b", "c"])
    assert result.job_status == "RUNNING"
    assert not result.finished
    assert result.outcomes["a"].state is DONE
    failed = result.outcomes["b"]
    assert (failed.state, failed.code, failed.reason) == (FAILED, "Ecs.0226", "Failed to start.")
    assert failed.kind == "permanent"
    assert result.outcomes["c"].state is RUNNING


def test_sub_job_reason_from_errorcode_message_and_transient_kind() -> None:
    sub = _sub("a", "FAIL", "Ecs.0002")
    sub["entities"] = {"server_id": "a", "errorcode_message": "system busy"}
    result = parse_job({"status": "FAIL", "entities": {"sub_jobs": [sub]}}, ["a"])
    assert result.outcomes["a"].reason == "system busy"
    assert result.outcomes["a"].kind == "transient"
    assert result.finished


def test_job_without_sub_jobs_decides_for_all_servers() -> None:
    assert parse_job({"status": "INIT", "job_id": "j"}, ["x"]).outcomes["x"].state is RUNNING
    assert parse_job({"status": "SUCCESS", "job_id": "j"}, ["x"]).outcomes["x"].state is DONE
    failed = parse_job(
        {"status": "FAIL", "job_id": "j", "error_code": "Ecs.0207", "fail_reason": "nope"}, ["x"]
    ).outcomes["x"]
    assert (failed.state, failed.code, failed.reason, failed.kind) == (
        FAILED,
        "Ecs.0207",
        "nope",
        "transient",
    )


def _nova(status: str, task: str | None = None, flavor: str = "1", **kw: object) -> ServerRef:
    body = {
        "id": "s",
        "name": "n",
        "status": status,
        "OS-EXT-STS:task_state": task,
        "OS-EXT-STS:vm_state": "active",
        "flavor": {"id": flavor},
        "tags": ["env=prod", "bare"],
        **kw,
    }
    return parse_server(body, endpoint="e", provider=Provider.OPENSTACK)


def test_parse_server_normalises() -> None:
    server = _nova("ACTIVE", "powering-off", locked=True)
    assert server.status is S.STOPPING
    assert server.raw_status == "ACTIVE"
    assert server.task_state == "powering-off"
    assert server.tags == {"env": "prod", "bare": ""}
    assert server.flavor == "1"
    assert server.locked
    es = parse_server(
        {
            "id": "x",
            "status": "SHUTOFF",
            "OS-EXT-SRV-ATTR:task_state": "powering-on",
            "flavor": {"original_name": "m1.small", "vcpus": 1},
        },
        endpoint="e",
        provider=Provider.OPENSTACK,
    )
    assert es.status is S.STARTING
    assert es.flavor == "m1.small"


def test_nova_outcomes() -> None:
    assert server_outcome(Action.STOP, _nova("ACTIVE", "powering-off"), None).state is RUNNING
    assert server_outcome(Action.STOP, _nova("SHUTOFF"), None).state is DONE
    assert server_outcome(Action.START, _nova("ACTIVE"), None).state is DONE
    assert server_outcome(Action.START, _nova("SHUTOFF"), None).state is FAILED
    assert server_outcome(Action.REBOOT, _nova("REBOOT", "reboot_started"), None).state is RUNNING
    assert server_outcome(Action.REBOOT, _nova("ACTIVE"), None).state is DONE
    error = server_outcome(Action.START, _nova("ERROR", fault={"message": "boom"}), None)
    assert (error.state, error.reason) == (FAILED, "boom")
    assert server_outcome(Action.RESIZE, _nova("VERIFY_RESIZE", flavor="2"), "2").state is DONE
    assert server_outcome(Action.RESIZE, _nova("ACTIVE", flavor="2"), "2").state is DONE
    assert server_outcome(Action.RESIZE, _nova("ACTIVE", flavor="1"), "2").state is FAILED
    assert server_outcome(Action.RESIZE, _nova("RESIZE", "resize_prep"), "2").state is RUNNING
    assert server_outcome(Action.CONFIRM_RESIZE, _nova("VERIFY_RESIZE"), None).state is RUNNING
    assert server_outcome(Action.CONFIRM_RESIZE, _nova("ACTIVE"), None).state is DONE
    assert server_outcome(Action.DELETE, _nova("DELETED"), None).state is DONE
    assert server_outcome(Action.DELETE, _nova("ACTIVE", "deleting"), None).state is RUNNING
    rolled_back = server_outcome(Action.STOP, _nova("ACTIVE", fault={"message": "no"}), None)
    assert (rolled_back.state, rolled_back.reason) == (FAILED, "no")


def test_tags_to_remove() -> None:
    current = ["env=prod", "env=dev", "team=a", "bare"]
    assert tags_to_remove(current, {"env": ""}) == ["env=prod", "env=dev"]
    assert tags_to_remove(current, {"env": "dev", "bare": ""}) == ["env=dev", "bare"]
    assert tags_to_remove(current, {"nope": ""}) == []


def test_submission_round_trips_through_a_dict() -> None:
    sub = Submission(
        Action.RESIZE, ("a",), "resize", job_id="j", request_id="r", done=False, flavor="f"
    )
    assert Submission.from_dict(sub.as_dict()) == sub
