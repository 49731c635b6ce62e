"""`fleet serve`: the API with the whole service (simulator, drivers, store, engine) inside it.

`service_app(settings)` is an app factory whose cleanup context opens the Fleet, so every resource
starts before the first request and closes, in reverse order, after the last one. `serve()` runs
it until SIGINT/SIGTERM.

Bootstrap: with a token file (`--bootstrap-token-file` or `FLEET_BOOTSTRAP_TOKEN_FILE`), start-up
makes sure the file holds a valid admin token named `bootstrap`: an existing valid token is kept,
otherwise a new one replaces it and is written to the file (mode 0600). The token itself is never
logged. Without a file, create tokens with `fleet tokens create NAME --role admin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import structlog
from aiohttp import web

from fleet.api.app import build_app
from fleet.api.connections import ServiceRunner
from fleet.api.context import FLEET, TOKENS, ApiConfig
from fleet.service import open_fleet, serve_worker
from fleet.settings import ServiceSpec, Settings
from fleet.tokens import Role, TokenStore

log = structlog.get_logger("fleet.api")

BOOTSTRAP_ENV = "FLEET_BOOTSTRAP_TOKEN_FILE"
BOOTSTRAP_NAME = "bootstrap"


def _read_secret(path: Path) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return path.read_text(encoding="utf-8").strip()
    return ""


def write_secret(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read (created 0600, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text + "\n")


async def ensure_bootstrap_token(tokens: TokenStore, path: Path) -> bool:
    """Make `path` hold a valid admin token; True when a new one was written."""
    current = await asyncio.to_thread(_read_secret, path)
    identity = await tokens.verify(current) if current else None
    if identity is not None and identity.role is Role.ADMIN:
        return False
    _, token = await tokens.replace(BOOTSTRAP_NAME, Role.ADMIN, datetime.now(UTC))
    await asyncio.to_thread(write_secret, path, token)
    return True


def service_app(
    settings: Settings,
    *,
    bootstrap_token_file: str | None = None,
    config: ApiConfig | None = None,
    worker: str | None = None,
    role: str = "all",
) -> web.Application:
    """The app factory of `fleet serve`: the Fleet lives in the app's cleanup context. `role`:
    `all` (the API and the engine), `api` (the API; the engine runs elsewhere) or `engine` (the
    engine, with only health, readiness and metrics over HTTP)."""
    app = build_app(config or api_config(settings.service), engine_only=role == "engine")

    async def fleet_context(app: web.Application) -> AsyncIterator[None]:
        async with open_fleet(settings, worker=worker, engine=role != "api") as fleet:
            app[FLEET] = fleet
            app[TOKENS] = TokenStore(fleet.store.db)
            if bootstrap_token_file:
                path = Path(bootstrap_token_file)
                if await ensure_bootstrap_token(app[TOKENS], path):
                    log.info("bootstrap_token_written", path=str(path), name=BOOTSTRAP_NAME)
            yield

    app.cleanup_ctx.append(fleet_context)
    return app


def api_config(spec: ServiceSpec) -> ApiConfig:
    """The HTTP layer's knobs that `[service]` sets."""
    return ApiConfig(
        max_requests=spec.max_requests, max_streams_per_token=spec.max_streams_per_token
    )


def service_runner(app: web.Application, spec: ServiceSpec) -> web.AppRunner:
    """The runner of `fleet serve`: connections limited by `[service]`'s keep-alive and header
    timeouts (`fleet.api.connections`); SIGINT/SIGTERM are handled by `serve`."""
    return ServiceRunner(
        app,
        keepalive_timeout=spec.keepalive_timeout,
        header_timeout=spec.header_timeout,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=5.0,
    )


def _bound_url(runner: web.AppRunner, host: str) -> str:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        for sock in sockets:
            port = sock.getsockname()[1]
            return f"http://{host}:{port}"
    raise RuntimeError("the HTTP server has no listening socket")


async def serve(
    settings: Settings,
    *,
    bootstrap_token_file: str | None = None,
    url_file: str | None = None,
    worker: str | None = None,
    role: str = "all",
) -> None:
    """Run until SIGINT/SIGTERM; then stop taking requests, close streams, drain the engine.
    `worker` (`--worker`) names this process's engine (`fleet.service.serve_worker`)."""
    worker = serve_worker(settings, worker)
    app = service_app(settings, bootstrap_token_file=bootstrap_token_file, worker=worker, role=role)
    runner = service_runner(app, settings.service)
    await runner.setup()
    try:
        host, port = settings.service.host, settings.service.port
        await web.TCPSite(runner, host, port).start()
        url = _bound_url(runner, host)
        if url_file:
            await asyncio.to_thread(Path(url_file).write_text, url + "\n", "utf-8")
        log.info("service_started", url=url, role=role)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("service_stopping")
    finally:
        await runner.cleanup()
    log.info("service_stopped")
