"""How long an HTTP connection may sit idle or half-sent: `fleet serve`'s aiohttp runner.

Two limits, from `[service]` in the configuration:

- `keepalive_timeout`: a connection with no request in progress is closed after this many seconds
  (counted from the connection's start, then from the end of each answer). aiohttp's own limit.
- `header_timeout`: a client has this many seconds to send a request's line and headers, counted
  from the connection's start (the first request) or from the first byte of a later request. A
  connection that has not completed its headers by then is closed without an answer, before any
  authentication: a client cannot hold a connection open by sending a request byte by byte.
  aiohttp has no such limit; `_Handler` adds it to aiohttp's request handler.

A request whose headers are complete is not limited here (its body, a long event stream).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiohttp import web

log = structlog.get_logger("fleet.api")


class _Handler(web.RequestHandler):
    """aiohttp's request handler with a deadline on request headers (`header_timeout`)."""

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def _headers_done(self) -> bool:
        # a request is parsed and queued, or being handled (aiohttp's own state)
        return bool(self._messages) or self._request_in_progress

    def _arm(self) -> None:
        if self._header_timer is None:
            loop = asyncio.get_running_loop()
            self._header_timer = loop.call_later(self._header_timeout, self._header_deadline)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self.transport is None or self._headers_done():
            return
        log.debug(
            "connection_header_timeout",
            peer=str(self.transport.get_extra_info("peername")),
            seconds=self._header_timeout,
        )
        self.force_close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._headers_done():
            self._disarm()
        elif self.transport is not None:
            self._arm()  # the first bytes of a request: its headers have a deadline

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class _Server(web.Server):
    """aiohttp's low-level server, making `_Handler`s."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout

    def __call__(self) -> web.RequestHandler:
        return _Handler(self, loop=self._loop, header_timeout=self._header_timeout, **self._kwargs)


class ServiceRunner(web.AppRunner):
    """An `AppRunner` whose connections have both limits (see the module's docstring)."""

    def __init__(
        self,
        app: web.Application,
        *,
        keepalive_timeout: float,
        header_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, keepalive_timeout=keepalive_timeout, **kwargs)
        self._header_timeout = header_timeout

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # starts the app; its kwargs carry aiohttp's options
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            header_timeout=self._header_timeout,
            **made._kwargs,
        )
