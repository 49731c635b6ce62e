"""The one place drivers send HTTP: gate, authenticate, time out, classify, log.

Every call passes the injected `RequestGate` first (so lists and polls are rate limited too), then
gets its auth headers (a cached token, or an AK/SK signature computed on the exact bytes sent), and
runs under a timeout. The dialect's classifier looks at every response, 2xx included (Huawei can
answer HTTP 202 with a throttling error). A 401 refreshes the token once; idempotent reads are
retried a bounded number of times on throttling and transient errors; everything else is raised
for the engine to decide. Logs name the endpoint, API class, path, status and request id, never a
header: tokens and signatures stay out of them.

Whoever wants to know why calls wait (the planning of an operation) sets `WAIT_LISTENER` in its
context (`listening`): a call that waits for its rate budget or for an answer longer than
`note_after` seconds, or waits to retry, tells it why, and tells it again (`None`) once it is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar
from urllib.parse import quote

import aiohttp
import structlog
import yarl

from fleet.drivers.base import RequestGate
from fleet.drivers.errors import AuthError, DriverError, Throttled, Transient
from fleet.drivers.query import QueryValue, canonical_query

log = structlog.get_logger("fleet.drivers")

T = TypeVar("T")

USER_AGENT = "fleet/0.1"
REQUEST_ID_HEADERS = (
    "X-Request-Id",
    "X-Openstack-Request-Id",
    "X-Compute-Request-Id",
    "X-Openstack-Nova-Request-Id",
    "RequestId",
)


WaitListener = Callable[[str, str | None], None]
"""`(endpoint, reason)`: calls to the endpoint wait for `reason`; `None`: they no longer wait."""

WAIT_LISTENER: ContextVar[WaitListener | None] = ContextVar("fleet_wait_listener", default=None)


@contextlib.contextmanager
def listening(listener: WaitListener) -> Iterator[None]:
    """Calls made in this context (and in tasks created in it) tell `listener` why they wait."""
    reset = WAIT_LISTENER.set(listener)
    try:
        yield
    finally:
        WAIT_LISTENER.reset(reset)


class _Waits:
    """One call's notes to the context's listener: `base` (waiting to retry) under `current`
    (waiting for the budget or an answer); the last note is withdrawn when the call ends."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.listener = WAIT_LISTENER.get()
        self.base: str | None = None
        self.shown: str | None = None

    def _show(self, reason: str | None) -> None:
        if self.listener is not None and reason != self.shown:
            self.shown = reason
            self.listener(self.endpoint, reason)

    def retrying(self, reason: str) -> None:
        self.base = reason
        self._show(reason)

    async def watch(self, step: Awaitable[T], reason: Callable[[], str], after: float) -> T:
        """Await `step`; if it takes longer than `after` seconds, note `reason()` meanwhile."""
        if self.listener is None:
            return await step
        timer = asyncio.get_running_loop().call_later(after, lambda: self._show(reason()))
        try:
            return await step
        finally:
            timer.cancel()
            self._show(self.base)

    def over(self) -> None:
        self.base = None
        self._show(None)


@dataclass(frozen=True)
class HttpRequest:
    """One call. `path` is appended to the base URL and must already be percent-encoded."""

    method: str
    path: str
    api_class: str
    query: Sequence[tuple[str, QueryValue]] = ()
    json_body: object = None
    server_ids: tuple[str, ...] = ()  # the servers this call acts on (gate budget and logs)
    headers: Mapping[str, str] = field(default_factory=dict)
    close_connection: bool = False  # Huawei native OpenStack APIs: no long connections

    @property
    def servers(self) -> int:
        return len(self.server_ids)

    @property
    def retry_safe(self) -> bool:
        return self.method in ("GET", "HEAD")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # lower-case names
    data: object  # parsed JSON, or None
    text: str
    request_id: str | None
    method: str
    path: str


class Authenticator(Protocol):
    async def headers(
        self, method: str, url: yarl.URL, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        """Headers that authenticate this exact request (token, or a signature)."""
        ...

    def invalidate(self, applied: Mapping[str, str]) -> bool:
        """The cloud refused `applied`; return True if a retry with fresh credentials may work."""
        ...


class NoAuth:
    async def headers(
        self, method: str, url: yarl.URL, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        return {}

    def invalidate(self, applied: Mapping[str, str]) -> bool:
        return False


Classifier = Callable[[HttpResponse], DriverError | None]


def encode_body(body: object) -> bytes | None:
    if body is None:
        return None
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def seg(value: str) -> str:
    """One path segment (a server id, a tag), percent-encoded; `/` included."""
    return quote(value, safe="")


def join_url(base: str, path: str, query: str) -> yarl.URL:
    """`base` + already-encoded `path` + canonical `query`, never re-encoded by yarl/aiohttp."""
    raw = base.rstrip("/") + path
    if query:
        raw += "?" + query
    return yarl.URL(raw, encoded=True)


def _shown(ids: tuple[str, ...], limit: int = 10) -> list[str]:
    """The first ids of a call, enough to find it in the logs without a 1,000-id line."""
    return list(ids[:limit])


def _request_id(headers: Mapping[str, str], data: object) -> str | None:
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name.lower())
        if value:
            return value
    if isinstance(data, dict):
        for key in ("request_id", "RequestId", "requestId"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
    return None


class CloudClock:
    """The latest time the cloud's own clock showed (the `Date` of its answers), shared by an
    endpoint's transports. Every answer read before a call was sent shows a time at or before
    that send in the cloud's clock, whatever this host's clock or the cloud's pace: the lower
    bound that the cloud's records of an action are compared with (`fleet.engine.evidence`)."""

    def __init__(self) -> None:
        self.latest: datetime | None = None

    def saw(self, date_header: str | None) -> None:
        at = http_date(date_header)
        if at is not None and (self.latest is None or at > self.latest):
            self.latest = at


def http_date(raw: str | None) -> datetime | None:
    """An HTTP `Date` header as an aware UTC datetime, None if absent or unreadable."""
    if not raw:
        return None
    try:
        at = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


@dataclass
class Transport:
    """HTTP to one base URL of one endpoint."""

    session: aiohttp.ClientSession
    gate: RequestGate
    endpoint: str
    base_url: str
    classify: Classifier
    auth: Authenticator = field(default_factory=NoAuth)
    timeout: float = 30.0
    connect_timeout: float = 10.0
    read_retries: int = 2
    max_retry_wait: float = 5.0
    note_after: float = 1.0  # seconds a call waits (budget, answer) before it tells why
    clock: CloudClock | None = None  # told the `Date` of every answer

    async def call(self, req: HttpRequest) -> HttpResponse:
        waits = _Waits(self.endpoint)
        try:
            return await self._call(req, waits)
        finally:
            waits.over()

    async def _call(self, req: HttpRequest, waits: _Waits) -> HttpResponse:
        refreshed = False
        attempt = 0

        def answer() -> str:
            return f"waiting for the answer to {req.method} {req.path} ({req.api_class})"

        def budget() -> str:
            key = f"{self.endpoint}:{req.api_class}"
            return f"waiting for the rate budget of {key} (calls to {req.method} {req.path})"

        while True:
            await waits.watch(self.gate.before(req.api_class, req.servers), budget, self.note_after)
            applied: dict[str, str] = {}
            try:
                try:
                    response, applied = await waits.watch(self._send(req), answer, self.note_after)
                finally:
                    self.gate.after(req.api_class, req.servers)
                error = self.classify(response)
                if error is None:
                    return response
                log.info(
                    "http_call_refused",
                    endpoint=self.endpoint,
                    api_class=req.api_class,
                    method=req.method,
                    path=response.path,
                    status=response.status,
                    server_ids=_shown(req.server_ids),
                    code=error.code,
                    error=error.kind.value,
                    request_id=response.request_id,
                )
                if isinstance(error, Throttled):
                    self.gate.throttled(req.api_class, error.retry_after)
                raise error
            except AuthError:
                if refreshed or not self.auth.invalidate(applied):
                    raise
                refreshed = True
                log.info("token_invalidated", endpoint=self.endpoint, api_class=req.api_class)
            except (Throttled, Transient) as exc:
                if not req.retry_safe or attempt >= self.read_retries:
                    raise
                attempt += 1
                delay = self._retry_delay(exc, attempt)
                waits.retrying(
                    f"retrying {req.method} {req.path} ({req.api_class}) in {delay:.1f} s, "
                    f"retry {attempt} of {self.read_retries}, after: {exc}"
                )
                await asyncio.sleep(delay)

    def _retry_delay(self, exc: DriverError, attempt: int) -> float:
        hinted = exc.retry_after if isinstance(exc, Throttled) else None
        delay = hinted if hinted is not None else 0.2 * 2**attempt
        return min(delay, self.max_retry_wait)

    async def _send(self, req: HttpRequest) -> tuple[HttpResponse, dict[str, str]]:
        query = canonical_query(req.query)
        url = join_url(self.base_url, req.path, query)
        body = encode_body(req.json_body)
        headers = {
            "Host": url.host_port_subcomponent or "",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **req.headers,
        }
        if req.close_connection:
            headers["Connection"] = "close"
        applied = await self.auth.headers(req.method, url, headers, body)
        headers.update(applied)
        started = time.monotonic()
        try:
            response = await self._exchange(req, url, headers, body)
        except DriverError as exc:
            log.warning(
                "http_call_failed",
                endpoint=self.endpoint,
                api_class=req.api_class,
                method=req.method,
                path=url.path,
                server_ids=_shown(req.server_ids),
                error=exc.kind.value,
                detail=exc.message,
            )
            raise
        log.debug(
            "http_call_completed",
            endpoint=self.endpoint,
            api_class=req.api_class,
            method=req.method,
            path=url.path,
            status=response.status,
            request_id=response.request_id,
            servers=req.servers,
            server_ids=_shown(req.server_ids),
            elapsed_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return response, applied

    async def _exchange(
        self, req: HttpRequest, url: yarl.URL, headers: dict[str, str], body: bytes | None
    ) -> HttpResponse:
        timeout = aiohttp.ClientTimeout(total=self.timeout, connect=self.connect_timeout)
        try:
            async with self.session.request(
                req.method, url, headers=headers, data=body, timeout=timeout, allow_redirects=False
            ) as resp:
                raw = await resp.read()
                resp_headers = {k.lower(): v for k, v in resp.headers.items()}
                status = resp.status
            if self.clock is not None:
                self.clock.saw(resp_headers.get("date"))
        except TimeoutError as exc:
            raise Transient(f"{req.method} {url.path} timed out", ambiguous=True) from exc
        except aiohttp.ClientConnectorError as exc:
            raise Transient(f"cannot connect for {req.method} {url.path}: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise Transient(
                f"{req.method} {url.path} failed: {type(exc).__name__}: {exc}", ambiguous=True
            ) from exc
        text = raw.decode("utf-8", errors="replace")
        data: object = None
        if text.strip():
            try:
                data = json.loads(text)
            except ValueError:
                data = None
        return HttpResponse(
            status=status,
            headers=resp_headers,
            data=data,
            text=text,
            request_id=_request_id(resp_headers, data),
            method=req.method,
            path=url.path,
        )


def new_session(connection_limit: int, *, timeout: float = 30.0) -> aiohttp.ClientSession:
    """A session for one endpoint, with a bounded connector (call inside a running loop)."""
    connector = aiohttp.TCPConnector(limit=connection_limit, limit_per_host=connection_limit)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout), raise_for_status=False
    )
