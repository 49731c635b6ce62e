"""A real webhook receiver on loopback (aiohttp), for the webhook tests.

It records every request (headers, raw body, when it arrived) and answers the statuses it is
told to, one per request (then 200). `verify` checks a request with the `standardwebhooks`
package, an implementation of the scheme independent of fleet's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web
from standardwebhooks.webhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"fleet-test-webhook-key-32-bytes!").decode()


@dataclass(frozen=True)
class Got:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time()

    @property
    def event(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.body)
        return data

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    answers: list[int] = field(default_factory=list)
    delay: float = 0.0
    got: list[Got] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.got.append(Got({k.lower(): v for k, v in request.headers.items()}, body, time.time()))
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.answers.pop(0) if self.answers else 200
        return web.Response(status=status, text="ok")

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def types(self) -> list[str]:
        return [str(g.event["type"]) for g in self.got]

    async def wait_for(self, predicate: object, seconds: float = 30.0) -> None:
        assert callable(predicate)
        deadline = time.monotonic() + seconds
        while not predicate(self):
            assert time.monotonic() < deadline, f"the receiver did not get it: {self.types()}"
            await asyncio.sleep(0.05)


def verify(got: Got, secret: str = SECRET) -> dict[str, object]:
    """The event, if the standardwebhooks verifier accepts the request (else it raises)."""
    data: dict[str, object] = Webhook(secret).verify(got.body, got.headers)
    return data


@contextmanager
def receiver_thread(delay: float = 0.0) -> Iterator[Receiver]:
    """A receiver on its own event loop in a thread (for tests that drive processes)."""
    receiver = Receiver(delay=delay)
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(receiver.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield receiver
    finally:
        asyncio.run_coroutine_threadsafe(receiver.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def secret_env() -> dict[str, str]:
    """The environment a service needs for `secret = "env:FLEET_TEST_WHSEC"`."""
    return {**os.environ, "FLEET_TEST_WHSEC": SECRET}
