"""OpenStack/EasyStack error classification.

Bodies come as `{"error": {"message", "code": <int>, "title"}}` (EasyStack, Keystone) or as Nova's
single-key envelopes (`{"itemNotFound": {...}}`, `{"conflictingRequest": {...}}`, `{"overLimit":
{...}}`; api-digest 5.1 advises accepting both). The envelope name is kept as the vendor code and
decides the kind; the HTTP status decides when there is none. A 429 keeps its `Retry-After`
(header, or the body's `retryAfter`). A transient 5xx (503 aside) to a call that changes something
is ambiguous: the backend may have acted (`ambiguous_answer`).
"""

from __future__ import annotations

from types import MappingProxyType

from fleet.drivers.errors import (
    DriverError,
    ErrorKind,
    ambiguous_answer,
    error_for,
    kind_for_status,
)
from fleet.drivers.errors import parse_retry_after as _retry
from fleet.drivers.http import HttpResponse
from fleet.drivers.jsonutil import as_dict, opt_str

K = ErrorKind

ENVELOPE_KINDS = MappingProxyType(
    {
        "overLimit": K.THROTTLED,
        "rateLimit": K.THROTTLED,
        "itemNotFound": K.NOT_FOUND,
        "conflictingRequest": K.INVALID_STATE,
        "badRequest": K.PERMANENT,
        "forbidden": K.PERMANENT,
        "badMethod": K.PERMANENT,
        "notImplemented": K.PERMANENT,
        "unauthorized": K.AUTH,
        "computeFault": K.TRANSIENT,
        "serviceUnavailable": K.TRANSIENT,
    }
)


def _envelope(data: object) -> tuple[str | None, str | None, dict[str, object]]:
    """(envelope name, message, inner object) of an error body."""
    body = as_dict(data)
    err = body.get("error")
    if isinstance(err, dict):
        inner = as_dict(err)
        return None, opt_str(inner.get("message")), inner
    if len(body) == 1:
        name, value = next(iter(body.items()))
        inner = as_dict(value)
        if inner:
            return name, opt_str(inner.get("message")), inner
    return None, None, {}


def classify(response: HttpResponse) -> DriverError | None:
    if 200 <= response.status < 300:
        return None
    name, message, inner = _envelope(response.data)
    kind = (ENVELOPE_KINDS.get(name) if name else None) or kind_for_status(response.status)
    retry_after = _retry(response.headers.get("retry-after")) or _retry(
        opt_str(inner.get("retryAfter"))
    )
    text = message or response.text.strip()[:300] or f"HTTP {response.status}"
    return error_for(
        kind,
        text,
        code=name or (f"HTTP.{response.status}"),
        http_status=response.status,
        request_id=response.request_id,
        retry_after=retry_after,
        ambiguous=ambiguous_answer(response.method, response.status),
    )
