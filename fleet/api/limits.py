"""What one `fleet serve` gives the API at once, so API load never starves the engine beside it.

- **Requests handled at once** (`[service] max_requests`, `ApiConfig.max_requests`): a request
  takes one of that many slots before it is authenticated and handled, and gives it back when
  its answer is ready; the others wait their turn in arrival order (nothing is refused). The
  engine's loops run in the same process and the same database: with the API's work bounded,
  they get their turn however many clients call at once. A handler that waits on something else
  (a dry run waiting for its plan) gives its slot back while it waits (`idle`). Event streams and
  `/healthz` take no slot: a stream is bounded per token instead. On SQLite, the database writes
  a request makes go after the engine's (`jobs.priority`).
- **Event streams per token** (`[service] max_streams_per_token`): one more stream for a token
  that already has that many open is `429` with a `Retry-After`, naming the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator

from aiohttp import web
from aiohttp.typedefs import Handler

from fleet.api.context import CONFIG, identity_of
from fleet.api.errors import Problem
from jobs.priority import deferring

EVENTS_PATH = "/v1/operations/{operation_id}/events"
UNBOUNDED = frozenset({"/healthz", EVENTS_PATH})

GATE = web.AppKey("request_gate", asyncio.Semaphore)
STREAMS: web.AppKey[Counter[str]] = web.AppKey("streams_per_token")
_HELD = web.RequestKey("holds_request_slot", bool)


def install(app: web.Application) -> None:
    app[GATE] = asyncio.Semaphore(app[CONFIG].max_requests)
    app[STREAMS] = Counter()


def _bounded(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    return resource is None or resource.canonical not in UNBOUNDED


@web.middleware
async def request_slots(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Hold one of `max_requests` slots while the request is authenticated and handled."""
    if not _bounded(request):
        return await handler(request)
    gate = request.app[GATE]
    await gate.acquire()
    request[_HELD] = True
    try:
        with deferring():  # its database writes go after the engine's (jobs.priority)
            return await handler(request)
    finally:
        if request[_HELD]:
            gate.release()


@contextlib.asynccontextmanager
async def idle(request: web.Request) -> AsyncIterator[None]:
    """Give the request's slot back while the block waits; take one again after it."""
    if not request.get(_HELD, False):
        yield
        return
    gate = request.app[GATE]
    request[_HELD] = False
    gate.release()
    try:
        yield
    finally:
        await gate.acquire()
        request[_HELD] = True


@contextlib.contextmanager
def stream_slot(request: web.Request) -> Iterator[None]:
    """Count one event stream of the caller's token while the block runs; 429 past the cap."""
    cap = request.app[CONFIG].max_streams_per_token
    name = identity_of(request).name
    open_now = request.app[STREAMS]
    if open_now[name] >= cap:
        raise Problem(
            429,
            f"too many event streams: this token has {open_now[name]} open, the limit is {cap}"
            " ([service] max_streams_per_token); close one, or follow the operation with GET",
            headers={"Retry-After": "5"},
        )
    open_now[name] += 1
    try:
        yield
    finally:
        open_now[name] -= 1
        if open_now[name] <= 0:
            del open_now[name]
