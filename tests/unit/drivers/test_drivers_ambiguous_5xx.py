"""A 5xx answer to a call that changes something may come after the cloud acted (a gateway timeout
in front of a backend that went on, an internal error after the work began): it is an *ambiguous*
Transient, so the engine reads the server before re-sending. Reads stay plain retries, and 503
(the service did not take the request) stays as it was."""

from __future__ import annotations

import json

import pytest

from fleet.drivers.errors import (
    ErrorKind,
    Throttled,
    Transient,
    ambiguous_answer,
    error_for,
)
from fleet.drivers.http import Classifier, HttpResponse
from fleet.drivers.huawei import errors as hw
from fleet.drivers.nova import errors as nova

HW_ACTION = ("POST", "/v1/p/cloudservers/action")
HW_DELETE = ("POST", "/v1/p/cloudservers/delete")
HW_BMS_ACTION = ("POST", "/v1/p/baremetalservers/action")
HW_READ = ("GET", "/v1/p/cloudservers/s-1")
NOVA_ACTION = ("POST", "/v2.1/servers/s-1/action")
NOVA_DELETE = ("DELETE", "/v2.1/servers/s-1")
NOVA_READ = ("GET", "/v2.1/servers/s-1")

HW_INTERNAL = {"error": {"code": "Common.0001", "message": "A system exception occurred."}}
HW_THREADS = {"error": {"code": "Ecs.0615", "message": "The thread list is empty."}}
COMPUTE_FAULT = {"computeFault": {"code": 500, "message": "Unexpected API Error."}}
NOVA_UNAVAILABLE = {"serviceUnavailable": {"code": 503, "message": "Service Unavailable"}}


def _resp(call: tuple[str, str], status: int, data: object) -> HttpResponse:
    method, path = call
    text = json.dumps(data) if isinstance(data, dict) else str(data or "")
    return HttpResponse(
        status=status,
        headers={"x-request-id": "req-1"},
        data=data if isinstance(data, dict) else None,
        text=text,
        request_id="req-1",
        method=method,
        path=path,
    )


def _transient(classify: Classifier, call: tuple[str, str], status: int, data: object) -> Transient:
    error = classify(_resp(call, status, data))
    assert isinstance(error, Transient), error
    assert error.http_status == status
    return error


@pytest.mark.parametrize(
    ("call", "status", "data"),
    [
        (HW_ACTION, 500, HW_INTERNAL),
        (HW_ACTION, 500, HW_THREADS),
        (HW_ACTION, 500, None),
        (HW_ACTION, 502, "<html>502 Bad Gateway</html>"),
        (HW_ACTION, 504, "<html>504 Gateway Time-out</html>"),
        (HW_ACTION, 504, HW_INTERNAL),  # a known transient code, but on a gateway timeout
        (HW_ACTION, 507, None),  # any other 5xx we cannot place
        (HW_DELETE, 500, HW_INTERNAL),
        (HW_BMS_ACTION, 502, None),
    ],
)
def test_huawei_5xx_to_a_change_is_ambiguous(
    call: tuple[str, str], status: int, data: object
) -> None:
    assert _transient(hw.classify, call, status, data).ambiguous is True


@pytest.mark.parametrize(
    ("call", "status", "data"),
    [
        (NOVA_ACTION, 500, COMPUTE_FAULT),
        (NOVA_ACTION, 500, None),
        (NOVA_ACTION, 502, "Bad Gateway"),
        (NOVA_ACTION, 504, "Gateway Timeout"),
        (NOVA_ACTION, 500, {"error": {"code": 500, "message": "boom", "title": "Error"}}),
        (NOVA_DELETE, 500, COMPUTE_FAULT),
        (NOVA_DELETE, 504, None),
    ],
)
def test_nova_5xx_to_a_change_is_ambiguous(
    call: tuple[str, str], status: int, data: object
) -> None:
    assert _transient(nova.classify, call, status, data).ambiguous is True


@pytest.mark.parametrize(
    ("classify", "call", "status", "data"),
    [
        (hw.classify, HW_READ, 500, HW_INTERNAL),
        (hw.classify, HW_READ, 502, None),
        (hw.classify, HW_READ, 504, None),
        (nova.classify, NOVA_READ, 500, COMPUTE_FAULT),
        (nova.classify, NOVA_READ, 502, None),
        (nova.classify, NOVA_READ, 504, None),
        (nova.classify, ("HEAD", "/v2.1/servers/s-1"), 500, None),
    ],
)
def test_a_5xx_to_a_read_stays_a_plain_retry(
    classify: Classifier, call: tuple[str, str], status: int, data: object
) -> None:
    assert _transient(classify, call, status, data).ambiguous is False


@pytest.mark.parametrize(
    ("classify", "call", "data"),
    [
        (hw.classify, HW_ACTION, HW_INTERNAL),  # what the simulator's error_burst answers
        (hw.classify, HW_ACTION, None),
        (hw.classify, HW_READ, None),
        (nova.classify, NOVA_ACTION, NOVA_UNAVAILABLE),
        (nova.classify, NOVA_ACTION, None),
        (nova.classify, NOVA_DELETE, None),
    ],
)
def test_503_is_unchanged_a_plain_retry(
    classify: Classifier, call: tuple[str, str], data: object
) -> None:
    assert _transient(classify, call, 503, data).ambiguous is False


def test_huawei_throttling_on_5xx_stays_throttling() -> None:
    # Ecs.0603 arrives as 501 "Other commands are being executed. Try again 1 minute later.":
    # refused, not performed, and not a Transient at all
    busy = hw.classify(_resp(HW_ACTION, 501, {"error": {"code": "Ecs.0603", "message": "busy"}}))
    assert isinstance(busy, Throttled) and busy.retry_after == 60.0
    flow = hw.classify(_resp(HW_ACTION, 500, {"error": {"code": "Common.1503", "message": "x"}}))
    assert isinstance(flow, Throttled)


def test_a_transient_vendor_code_on_a_4xx_is_not_ambiguous() -> None:
    # "Failed to submit the task": a refusal of the request, not a lost answer
    error = _transient(hw.classify, HW_ACTION, 400, {"error": {"code": "Ecs.0002", "message": "x"}})
    assert error.ambiguous is False


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [
        ("POST", 500, True),
        ("post", 502, True),
        ("DELETE", 504, True),
        ("PUT", 501, True),
        ("POST", 503, False),
        ("GET", 500, False),
        ("HEAD", 504, False),
        ("POST", 408, False),
        ("POST", 429, False),
        ("POST", 400, False),
    ],
)
def test_ambiguous_answer(method: str, status: int, expected: bool) -> None:
    assert ambiguous_answer(method, status) is expected


def test_error_for_keeps_ambiguous_on_transient_only() -> None:
    error = error_for(ErrorKind.TRANSIENT, "m", http_status=504, ambiguous=True)
    assert isinstance(error, Transient) and error.ambiguous is True
    plain = error_for(ErrorKind.TRANSIENT, "m")
    assert isinstance(plain, Transient) and plain.ambiguous is False
    assert error_for(ErrorKind.PERMANENT, "m", ambiguous=True).kind is ErrorKind.PERMANENT
