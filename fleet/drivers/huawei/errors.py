"""Huawei error classification: vendor code first, HTTP status second, every 2xx body checked.

The table is built from the ECS error-code appendix (`ecs_error_codes.json`, 162 rows: HTTP status,
code, message) with simple rules, then the overrides below, each taken from the API digest's
"suggested executor class" (section 5.3) or from the product's list of throttling answers. Huawei
says its HTTP statuses "may not be accurate", so a known code wins over the status: `Common.0024`
arrives with HTTP 202 and is still throttling. A transient 5xx (503 aside) to a call that changes
something is ambiguous: the backend may have acted (`ambiguous_answer`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

from fleet.drivers.errors import (
    DriverError,
    ErrorKind,
    ambiguous_answer,
    error_for,
    kind_for_status,
    parse_retry_after,
)
from fleet.drivers.http import HttpResponse
from fleet.drivers.jsonutil import as_dict, as_list, opt_str

K = ErrorKind

# Overrides of the rule-derived kinds, with the reason in the comment.
OVERRIDES: dict[str, ErrorKind] = {
    "Ecs.0000": K.PERMANENT,  # generic "request error": the request itself is wrong
    "Ecs.0004": K.AUTH,  # "Authentication failed."
    "Ecs.0023": K.AUTH,  # project id in token differs from URL: endpoint misconfigured
    "Common.0018": K.AUTH,  # same
    "Common.0013": K.AUTH,  # "Invalid token." (refresh once, then give up)
    "Ecs.0009": K.INVALID_STATE,  # resize to the current flavor: maybe already done
    "Ecs.0810": K.INVALID_STATE,  # same
    "Ecs.0100": K.INVALID_STATE,  # "The ECS status does not meet requirements."
    "Ecs.0118": K.PERMANENT,  # more servers in a batch than allowed: a bug, not a retry
    "Ecs.0209": K.TRANSIENT,  # "Failed to modify the ECS specifications. Try again"
    "Ecs.0603": K.THROTTLED,  # 501 "Other commands are being executed. Try again 1 minute later."
    "Ecs.0605": K.PERMANENT,  # "ECS locked." until someone unlocks it
    "Ecs.0611": K.PERMANENT,  # batch failed; the offending servers are in `internalError`
    "Common.0011": K.NOT_FOUND,  # "Invalid job ID."
    "Common.0021": K.TRANSIENT,  # error in job query
    "Common.0022": K.TRANSIENT,  # error in job submission
    "Common.0025": K.TRANSIENT,  # "Query job Error because %s."
    "Common.0026": K.TRANSIENT,  # "Fail to get Region Info"
    "Common.0999": K.PERMANENT,  # "Task terminated."
    "Common.0024": K.THROTTLED,  # HTTP 202 "exceeds flow over limit"
    "Common.1503": K.THROTTLED,  # HTTP 429 "Api flow control Error"
    # API gateway answers in front of every Huawei service (not in the ECS appendix).
    "APIGW.0301": K.AUTH,  # IAM authentication information incorrect (bad token/signature)
    "APIGW.0308": K.THROTTLED,  # request throttled by the gateway
}

# Seconds to wait when the cloud says so in words rather than a Retry-After header.
RETRY_AFTER: dict[str, float] = {"Ecs.0603": 60.0}

_VENDOR_CODE = re.compile(r"^[A-Za-z]+\.\d{4}$")


@dataclass(frozen=True)
class CodeRow:
    http: int
    code: str
    message: str


def _rows() -> list[CodeRow]:
    text = resources.files("fleet.drivers.huawei").joinpath("ecs_error_codes.json").read_text()
    return [
        CodeRow(int(r["http"]), str(r["code"]), str(r["message"]))
        for r in json.loads(text)
        if isinstance(r, dict)
    ]


def rule_kind(row: CodeRow) -> ErrorKind:
    """The kind a row gets before overrides: by HTTP status, and "try again" 400s are transient."""
    if row.http == 202:
        return K.THROTTLED
    if row.http == 400:
        return K.TRANSIENT if "try again" in row.message.lower() else K.PERMANENT
    return kind_for_status(row.http)


def build_table() -> dict[str, ErrorKind]:
    table = {row.code.lower(): rule_kind(row) for row in _rows()}
    table.update({code.lower(): kind for code, kind in OVERRIDES.items()})
    return table


CODE_KINDS = MappingProxyType(build_table())


def is_vendor_code(value: str | None) -> bool:
    return bool(value) and bool(_VENDOR_CODE.match(value or ""))


def kind_of_code(code: str | None) -> ErrorKind | None:
    """The kind of a vendor code (case-insensitive: the docs also write `ECS.XXXX`)."""
    if not code:
        return None
    return CODE_KINDS.get(code.lower())


@dataclass(frozen=True)
class VendorError:
    code: str | None
    message: str
    server_ids: tuple[str, ...] = ()


def extract_error(data: object, *, strict: bool) -> VendorError | None:
    """The error carried by a Huawei body, in any of its documented shapes.

    `strict` (for 2xx bodies) accepts only unmistakable error shapes, because a job body has its
    own `error_code` field that describes the job, not the request.
    """
    body = as_dict(data)
    failed = tuple(
        i for i in (opt_str(as_dict(e).get("id")) for e in as_list(body.get("internalError"))) if i
    )
    err = body.get("error")
    if isinstance(err, dict):
        code, message = opt_str(err.get("code")), opt_str(err.get("message")) or ""
        if not is_vendor_code(code) and is_vendor_code(message):  # the swapped example
            code, message = message, code or ""
        return VendorError(code, message, failed)
    if "error_msg" in body or (not strict and body.get("error_code")):
        return VendorError(opt_str(body.get("error_code")), opt_str(body.get("error_msg")) or "")
    top = opt_str(body.get("code"))
    if is_vendor_code(top) and "status" not in body and "job_id" not in body:
        return VendorError(top, opt_str(body.get("message")) or "")
    if not strict:
        return _nova_envelope(body)
    return None


def _nova_envelope(body: dict[str, object]) -> VendorError | None:
    """`{"itemNotFound": {"code": 404, "message": ...}}` (Huawei native OpenStack APIs)."""
    if len(body) == 1:
        inner = as_dict(next(iter(body.values())))
        if "message" in inner:
            code = opt_str(inner.get("code"))
            return VendorError(code if is_vendor_code(code) else None, str(inner["message"]))
    return None


def classify(response: HttpResponse) -> DriverError | None:
    """None when the response is a success; otherwise the error to raise."""
    ok = 200 <= response.status < 300
    found = extract_error(response.data, strict=ok)
    if ok and found is None:
        return None
    if found is None:
        found = VendorError(None, response.text.strip()[:300] or f"HTTP {response.status}")
    kind = kind_of_code(found.code) or kind_for_status(response.status)
    if ok and kind_of_code(found.code) is None:
        kind = K.PERMANENT  # an error body we cannot place, on a 2xx: do not treat as success
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if retry_after is None and found.code:
        retry_after = RETRY_AFTER.get(found.code)
    return error_for(
        kind,
        found.message or f"HTTP {response.status}",
        code=found.code,
        http_status=response.status,
        request_id=response.request_id,
        server_ids=found.server_ids,
        retry_after=retry_after,
        ambiguous=ambiguous_answer(response.method, response.status),
    )
