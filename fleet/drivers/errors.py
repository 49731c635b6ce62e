"""The one error tree every driver raises, and the kinds the classification tables map to.

    DriverError
    ├── Throttled(retry_after)   the cloud's rate limit answered: slow the key down, retry the same call
    ├── Transient(ambiguous)     5xx, timeouts, dropped connections: retry with backoff
                                 (ambiguous: the call may have acted; verify before re-sending)
    ├── InvalidState             the server is not in a state the action accepts: re-read, then decide
    ├── NotFound                 the server (or job) does not exist
    ├── Permanent                bad request, quota, permission, locked: retrying will not help
    ├── AuthError                credentials or token refused even after one refresh
    └── Unsupported              the dialect cannot do this at all (raised before any call)

Clouds are classified by vendor code first and HTTP status second (the Huawei docs say their status
codes "may not be accurate"). Every error keeps the vendor code, message, HTTP status and request id.
When a batch call names the servers that caused the rejection, `server_ids` carries them so the
engine can split the batch instead of failing all of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any, ClassVar


class ErrorKind(StrEnum):
    THROTTLED = "throttled"
    TRANSIENT = "transient"
    INVALID_STATE = "invalid_state"
    NOT_FOUND = "not_found"
    PERMANENT = "permanent"
    AUTH = "auth"
    UNSUPPORTED = "unsupported"


class DriverError(Exception):
    """Base of every driver failure."""

    kind: ClassVar[ErrorKind] = ErrorKind.PERMANENT

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        server_ids: Iterable[str] = (),
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field  # the request field at fault, when one is (`params.type`)
        self.code = code
        self.http_status = http_status
        self.request_id = request_id
        self.server_ids: tuple[str, ...] = tuple(server_ids)

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.insert(0, f"[{self.code}]")
        if self.http_status is not None:
            parts.append(f"(HTTP {self.http_status})")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)


class Throttled(DriverError):
    """The cloud's rate limit refused the call. `retry_after` (seconds) when the cloud said."""

    kind = ErrorKind.THROTTLED

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        server_ids: Iterable[str] = (),
    ) -> None:
        super().__init__(
            message,
            code=code,
            http_status=http_status,
            request_id=request_id,
            server_ids=server_ids,
        )
        self.retry_after = retry_after


class Transient(DriverError):
    """Worth retrying later. `ambiguous`: the request may have reached the cloud (timeout, a
    connection dropped after sending, or a 5xx answer to a call that changes something; see
    `ambiguous_answer`), so a non-idempotent call must be verified before resending."""

    kind = ErrorKind.TRANSIENT

    def __init__(
        self,
        message: str,
        *,
        ambiguous: bool = False,
        code: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        server_ids: Iterable[str] = (),
    ) -> None:
        super().__init__(
            message,
            code=code,
            http_status=http_status,
            request_id=request_id,
            server_ids=server_ids,
        )
        self.ambiguous = ambiguous


class InvalidState(DriverError):
    kind = ErrorKind.INVALID_STATE


class NotFound(DriverError):
    kind = ErrorKind.NOT_FOUND


class Permanent(DriverError):
    kind = ErrorKind.PERMANENT


class AuthError(DriverError):
    kind = ErrorKind.AUTH


class Unsupported(DriverError):
    """The dialect cannot do this at all; `field` names the request field at fault, if any."""

    kind = ErrorKind.UNSUPPORTED


_CLASSES: dict[ErrorKind, type[DriverError]] = {
    ErrorKind.THROTTLED: Throttled,
    ErrorKind.TRANSIENT: Transient,
    ErrorKind.INVALID_STATE: InvalidState,
    ErrorKind.NOT_FOUND: NotFound,
    ErrorKind.PERMANENT: Permanent,
    ErrorKind.AUTH: AuthError,
    ErrorKind.UNSUPPORTED: Unsupported,
}


def error_for(
    kind: ErrorKind,
    message: str,
    *,
    code: str | None = None,
    http_status: int | None = None,
    request_id: str | None = None,
    server_ids: Iterable[str] = (),
    retry_after: float | None = None,
    ambiguous: bool = False,
) -> DriverError:
    """Build the exception of `kind` (the classification tables deal in kinds, not classes).
    `retry_after` is kept by Throttled only, `ambiguous` by Transient only."""
    own: dict[str, Any] = {}
    if kind is ErrorKind.THROTTLED:
        own["retry_after"] = retry_after
    elif kind is ErrorKind.TRANSIENT:
        own["ambiguous"] = ambiguous
    return _CLASSES[kind](
        message,
        code=code,
        http_status=http_status,
        request_id=request_id,
        server_ids=tuple(server_ids),
        **own,
    )


def kind_for_status(status: int) -> ErrorKind:
    """The fallback when the body names no vendor code we know."""
    if status == 429:
        return ErrorKind.THROTTLED
    if status == 401:
        return ErrorKind.AUTH
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 409:
        return ErrorKind.INVALID_STATE
    if status in (408, 425) or status >= 500:
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


def ambiguous_answer(method: str, status: int) -> bool:
    """Whether an error answer leaves open that the request was performed.

    A 5xx to a call that changes something (anything but GET/HEAD) can come after the backend
    acted: a gateway timeout (504) or bad gateway (502) in front of a backend that went on, an
    internal error (500, Nova `computeFault`, Huawei `Common.0001`) raised after the work began.
    Re-sending such a call blind could reboot a server twice, so it is verified first. 503 says
    the service did not take the request (unavailable, overloaded) and stays a plain retry; reads
    are always safe to repeat.
    """
    return method.upper() not in ("GET", "HEAD") and status >= 500 and status != 503


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds (the delta form; an HTTP date is not worth parsing here)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)
