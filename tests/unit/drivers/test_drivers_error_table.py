"""The error classification tables: vendor code first, HTTP status second, 2xx bodies checked."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from fleet.drivers.errors import (
    AuthError,
    DriverError,
    ErrorKind,
    InvalidState,
    NotFound,
    Permanent,
    Throttled,
    Transient,
    error_for,
    kind_for_status,
    parse_retry_after,
)
from fleet.drivers.http import HttpResponse
from fleet.drivers.huawei import errors as hw
from fleet.drivers.nova import errors as nova

K = ErrorKind


def _resp(status: int, data: object, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(
        status=status,
        headers=headers or {"x-request-id": "req-1"},
        data=data,
        text=json.dumps(data) if data is not None else "",
        request_id="req-1",
        method="POST",
        path="/v1/p/cloudservers/action",
    )


def test_every_row_of_the_ecs_appendix_gets_a_kind() -> None:
    rows = json.loads(
        resources.files("fleet.drivers.huawei").joinpath("ecs_error_codes.json").read_text()
    )
    assert len(rows) == 162
    for row in rows:
        assert hw.kind_of_code(row["code"]) in set(ErrorKind), row["code"]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("Common.1503", K.THROTTLED),
        ("Common.0024", K.THROTTLED),
        ("Ecs.0603", K.THROTTLED),
        ("Ecs.0100", K.INVALID_STATE),
        ("Ecs.0009", K.INVALID_STATE),
        ("Ecs.0810", K.INVALID_STATE),
        ("Ecs.0114", K.NOT_FOUND),
        ("Ecs.0614", K.NOT_FOUND),
        ("Common.0011", K.NOT_FOUND),
        ("Common.0013", K.AUTH),
        ("Ecs.0023", K.AUTH),
        ("Common.0018", K.AUTH),
        ("Ecs.0605", K.PERMANENT),
        ("Ecs.0118", K.PERMANENT),
        ("Ecs.0611", K.PERMANENT),
        ("Ecs.0005", K.PERMANENT),
        ("Ecs.0003", K.PERMANENT),
        ("Pdp.0001", K.PERMANENT),
        ("Ecs.0905", K.PERMANENT),
        ("Ecs.0002", K.TRANSIENT),
        ("Ecs.0207", K.TRANSIENT),
        ("Ecs.0501", K.TRANSIENT),
        ("Ecs.0615", K.TRANSIENT),
        ("Ecs.1000", K.TRANSIENT),
        ("Common.0001", K.TRANSIENT),
        ("Common.0021", K.TRANSIENT),
        ("APIGW.0308", K.THROTTLED),
    ],
)
def test_digest_codes_have_their_documented_kind(code: str, kind: ErrorKind) -> None:
    assert hw.kind_of_code(code) is kind


def test_codes_are_case_insensitive() -> None:
    assert hw.kind_of_code("ECS.0100") is K.INVALID_STATE
    assert hw.kind_of_code("Ecs.9999") is None


def test_common_0024_with_http_202_is_throttling_not_success() -> None:
    error = hw.classify(
        _resp(202, {"error": {"code": "Common.0024", "message": "exceeds flow over limit"}})
    )
    assert isinstance(error, Throttled)
    assert error.code == "Common.0024"
    assert error.http_status == 202
    assert error.request_id == "req-1"


def test_a_plain_2xx_job_body_is_success() -> None:
    assert hw.classify(_resp(200, {"job_id": "abc"})) is None
    assert hw.classify(_resp(204, None)) is None
    # a job body has its own error_code describing the job, not the request
    job = {"status": "FAIL", "job_id": "j", "error_code": "Ecs.0226", "fail_reason": "x"}
    assert hw.classify(_resp(200, job)) is None


def test_vendor_code_wins_over_http_status() -> None:
    # Ecs.0100 comes with 400 but is a state conflict, not a bad request
    error = hw.classify(_resp(400, {"error": {"code": "Ecs.0100", "message": "status"}}))
    assert isinstance(error, InvalidState)
    # a throttling code on a 500 is still throttling
    assert isinstance(hw.classify(_resp(500, {"error": {"code": "Common.1503"}})), Throttled)


def test_unknown_codes_fall_back_to_the_http_status() -> None:
    assert isinstance(hw.classify(_resp(404, {"error": {"code": "Xyz.0001"}})), NotFound)
    assert isinstance(hw.classify(_resp(503, {"error": {"code": "Xyz.0001"}})), Transient)
    assert isinstance(hw.classify(_resp(401, {"error_code": "IAM.0001"})), AuthError)
    assert isinstance(hw.classify(_resp(502, None)), Transient)


def test_swapped_code_and_message_are_recognised() -> None:
    error = hw.classify(
        _resp(400, {"error": {"code": "request body is illegal.", "message": "Ecs.0005"}})
    )
    assert isinstance(error, Permanent)
    assert error.code == "Ecs.0005"
    assert error.message == "request body is illegal."


def test_generic_huawei_shape_and_job_query_shape() -> None:
    generic = hw.classify(_resp(400, {"error_code": "Ecs.0100", "error_msg": "no"}))
    assert isinstance(generic, InvalidState)
    job_query = hw.classify(_resp(400, {"code": "Common.0011", "message": "Invalid job ID."}))
    assert isinstance(job_query, NotFound)


def test_batch_rejection_carries_the_offending_server_ids() -> None:
    body = {
        "error": {"code": "Ecs.0611", "message": "Batch operation failed."},
        "internalError": [
            {"id": "s-2", "error_code": "Ecs.0605", "error_message": "locked"},
            {"id": "s-7", "error_code": "Ecs.0100", "error_message": "status"},
        ],
    }
    error = hw.classify(_resp(400, body))
    assert isinstance(error, Permanent)
    assert error.server_ids == ("s-2", "s-7")


def test_ecs_0603_waits_a_minute_and_retry_after_header_wins() -> None:
    error = hw.classify(_resp(501, {"error": {"code": "Ecs.0603", "message": "busy"}}))
    assert isinstance(error, Throttled)
    assert error.retry_after == 60.0
    error = hw.classify(
        _resp(429, {"error": {"code": "Common.1503"}}, headers={"retry-after": "7"})
    )
    assert isinstance(error, Throttled)
    assert error.retry_after == 7.0


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "retry_after"),
    [
        (429, {"overLimit": {"code": 429, "message": "slow", "retryAfter": "9"}}, {}, Throttled, 9),
        (429, {"overLimit": {"code": 429}}, {"retry-after": "3"}, Throttled, 3),
        (404, {"itemNotFound": {"code": 404, "message": "gone"}}, {}, NotFound, None),
        (409, {"conflictingRequest": {"code": 409, "message": "x"}}, {}, InvalidState, None),
        (400, {"badRequest": {"code": 400, "message": "x"}}, {}, Permanent, None),
        (
            401,
            {"error": {"code": 401, "message": "auth", "title": "Unauthorized"}},
            {},
            AuthError,
            None,
        ),
        (
            409,
            {"error": {"code": 409, "message": "c", "title": "Conflict"}},
            {},
            InvalidState,
            None,
        ),
        (500, {"computeFault": {"code": 500, "message": "x"}}, {}, Transient, None),
        (503, None, {}, Transient, None),
    ],
)
def test_nova_envelopes(
    status: int,
    body: object,
    headers: dict[str, str],
    expected: type[DriverError],
    retry_after: float | None,
) -> None:
    error = nova.classify(_resp(status, body, headers))
    assert isinstance(error, expected)
    if retry_after is not None:
        assert isinstance(error, Throttled)
        assert error.retry_after == retry_after


def test_nova_2xx_is_success() -> None:
    assert nova.classify(_resp(202, None)) is None
    assert nova.classify(_resp(200, {"servers": []})) is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, K.THROTTLED),
        (401, K.AUTH),
        (403, K.PERMANENT),
        (404, K.NOT_FOUND),
        (409, K.INVALID_STATE),
        (408, K.TRANSIENT),
        (500, K.TRANSIENT),
        (504, K.TRANSIENT),
        (400, K.PERMANENT),
    ],
)
def test_status_fallback(status: int, kind: ErrorKind) -> None:
    assert kind_for_status(status) is kind


def test_error_for_builds_the_class_of_each_kind() -> None:
    for kind in ErrorKind:
        error = error_for(kind, "m", code="C", http_status=400, request_id="r")
        assert error.kind is kind
        assert str(error) == "[C] m (HTTP 400) request_id=r"


def test_retry_after_parsing() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-3") == 0.0
