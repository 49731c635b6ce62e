"""How a Nova poll reads its servers: several at once from one `changes-since` listing (a server
the action touched has changed since the cloud accepted the call), then one `show` for each
server the listing did not have (no acceptance time, more changes than `CHANGED_PAGES` pages, a
clock that moved back, a deleted or purged server, a listing that failed).

One server's failed read does not hold up the others: it is left out of the result (the engine
reads it again next round). Only when nothing could be read does the error propagate, as it did
for a single server. The acceptance time is the cloud's clock (`cloud_time`, its `Date` header),
whatever this host's clock says.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from fleet.domain import Action, Provider, ServerRef, ServerStatus
from fleet.drivers.base import OutcomeState, PollResult, ServerOutcome, Submission, all_done
from fleet.drivers.errors import DriverError, NotFound, Throttled
from fleet.drivers.http import HttpResponse, http_date
from fleet.drivers.jsonutil import as_dict
from fleet.drivers.novacommon import parse_server, server_outcome
from fleet.drivers.query import QueryValue

log = structlog.get_logger("fleet.drivers")

CHANGES_SINCE_MARGIN = 2.0
"""Seconds a `changes-since` listing reaches back before the cloud's acceptance time: the
`Date` header has whole seconds, and the server's change comes a moment before the answer (a
server missed anyway is read with a `show`, so the margin only decides how often that happens)."""
CHANGED_PAGES = 2
"""Pages of one `changes-since` listing read at most; what it did not reach is read by `show`."""
SHOWS_AT_ONCE = 8
"""`show`s of one poll in flight at once (the endpoint's connection pool is shared)."""


class ServerReads(Protocol):
    """What a poll reads through (the driver)."""

    @property
    def endpoint(self) -> str: ...

    @property
    def provider(self) -> Provider: ...

    async def get_server(self, server_id: str) -> ServerRef: ...

    async def server_pages(
        self, query: Sequence[tuple[str, QueryValue]]
    ) -> AsyncGenerator[object, None]: ...


async def poll(reads: ServerReads, submission: Submission, page_size: int) -> PollResult:
    """Each server's status (see the module's docstring); `page_size`: servers per page."""
    if submission.done:
        return all_done(submission)
    ids = submission.server_ids
    since = parse_time(submission.since)
    listed: dict[str, ServerRef] = {}
    if len(ids) > 1 and since is not None:
        try:
            listed = await _changed(reads, ids, since, page_size)
        except Throttled:
            raise
        except DriverError as exc:  # read each server instead
            log.warning("poll_listing_failed", endpoint=reads.endpoint, error=str(exc))
    outcomes = {
        i: server_outcome(submission.action, server, submission.flavor)
        for i, server in listed.items()
    }
    gate = asyncio.Semaphore(SHOWS_AT_ONCE)

    async def show(server_id: str) -> ServerOutcome:
        async with gate:
            return await _show_outcome(reads, submission, server_id)

    missing = [i for i in ids if i not in listed]
    shown = await asyncio.gather(*(show(i) for i in missing), return_exceptions=True)
    failed = [r for r in shown if isinstance(r, BaseException)]
    if failed and len(failed) == len(ids):
        raise failed[0]
    for result in shown:
        if isinstance(result, DriverError):
            log.warning("poll_read_failed", endpoint=reads.endpoint, error=str(result))
        elif isinstance(result, BaseException):
            raise result
        else:
            outcomes[result.server_id] = result
    return PollResult({i: outcomes[i] for i in ids if i in outcomes})


async def _changed(
    reads: ServerReads, ids: Sequence[str], since: datetime, page_size: int
) -> dict[str, ServerRef]:
    """Those of `ids` among the servers changed since `since` (less `CHANGES_SINCE_MARGIN`:
    Nova compares whole seconds), reading at most `CHANGED_PAGES` pages."""
    query = [changes_since(since)]
    wanted, found, left = set(ids), {}, CHANGED_PAGES * page_size
    pages = await reads.server_pages(query)
    async with contextlib.aclosing(pages):
        async for body in pages:
            if as_dict(body).get("id") in wanted:  # parsed only if wanted: most are not
                server = parse_server(body, endpoint=reads.endpoint, provider=reads.provider)
                if server.status is not ServerStatus.DELETED:  # a show says 404, as before
                    found[server.id] = server
            left -= 1
            if len(found) == len(wanted) or left <= 0:
                break
    return found


def changes_since(since: datetime) -> tuple[str, str]:
    """The `changes-since` filter reaching `CHANGES_SINCE_MARGIN` before `since` (Nova compares
    whole seconds)."""
    floor = (since - timedelta(seconds=CHANGES_SINCE_MARGIN)).replace(microsecond=0)
    return ("changes-since", floor.strftime("%Y-%m-%dT%H:%M:%SZ"))


async def _show_outcome(
    reads: ServerReads, submission: Submission, server_id: str
) -> ServerOutcome:
    try:
        server = await reads.get_server(server_id)
    except NotFound:
        done = submission.action is Action.DELETE
        return ServerOutcome(
            server_id,
            OutcomeState.DONE if done else OutcomeState.FAILED,
            reason=None if done else "server not found",
            kind=None if done else "not_found",
            status=ServerStatus.DELETED,
        )
    return server_outcome(submission.action, server, submission.flavor)


def cloud_time(response: HttpResponse) -> str | None:
    """The cloud's clock when it answered (its `Date` header) as ISO 8601, None if absent: the
    clock a `changes-since` filter is compared with, whatever this host's clock says."""
    at = http_date(response.headers.get("date"))
    return None if at is None else at.isoformat()


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone); None for none or a malformed one."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
