"""The CLI commands that run fleet in this process (as opposed to talking to a running service)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog

from fleet.logging import configure_logging
from fleet.service import ensure_sqlite_dir, open_fleet, preflight
from fleet.settings import Settings, SettingsError, load_with_defaults
from jobs.store.identity import WorkerNameTaken
from jobs.store.migrate import upgrade


def _config_error(exc: SettingsError) -> int:
    """One line on stderr (a message with line breaks is folded), exit status 2."""
    text = " ".join(str(exc).split())
    sys.stderr.write(f"fleet: configuration error: {text}\n")
    return 2


def _load(paths: Sequence[str], *, check: bool = False) -> Settings | None:
    """The settings; with `check`, also what the service needs before it starts (endpoints'
    secrets, policy files: `fleet.service.preflight`)."""
    try:
        settings = load_with_defaults(paths)
        if check:
            preflight(settings)
    except SettingsError as exc:
        _config_error(exc)
        return None
    configure_logging(settings.logging.format, settings.logging.level)
    return settings


def run_db_upgrade(paths: Sequence[str]) -> int:
    settings = _load(paths)
    if settings is None:
        return 2
    ensure_sqlite_dir(settings.database.url)
    upgrade(settings.database.url)
    structlog.get_logger("fleet").info("database_upgraded")
    return 0


async def _worker(settings: Settings, name: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with open_fleet(settings, worker=name):
        structlog.get_logger("fleet").info("worker_started", worker=name)
        await stop.wait()


def _name_taken(exc: WorkerNameTaken) -> int:
    sys.stderr.write(f"fleet: {exc} (--worker NAME or engine.worker)\n")
    return 2


def run_worker(paths: Sequence[str], name: str | None) -> int:
    settings = _load(paths, check=True)
    if settings is None:
        return 2
    try:
        asyncio.run(_worker(settings, name))
    except SettingsError as exc:
        return _config_error(exc)
    except WorkerNameTaken as exc:
        return _name_taken(exc)
    return 0


def run_serve(
    paths: Sequence[str],
    bootstrap_token_file: str | None,
    url_file: str | None,
    worker: str | None = None,
    role: str = "all",
) -> int:
    """`fleet serve`: the REST API with the engine (or one of them, `--role`); stops cleanly on
    SIGINT/SIGTERM."""
    from fleet.api.server import BOOTSTRAP_ENV, serve

    settings = _load(paths, check=True)
    if settings is None:
        return 2
    token_file = bootstrap_token_file or os.environ.get(BOOTSTRAP_ENV) or None
    try:
        asyncio.run(
            serve(
                settings,
                bootstrap_token_file=token_file,
                url_file=url_file,
                worker=worker,
                role=role,
            )
        )
    except SettingsError as exc:
        return _config_error(exc)
    except WorkerNameTaken as exc:
        return _name_taken(exc)
    except OSError as exc:  # the port is taken, the address is not ours, ...
        where = f"{settings.service.host}:{settings.service.port}"
        sys.stderr.write(f"fleet: cannot serve on {where}: {exc.strerror or exc}\n")
        return 2
    return 0


async def _tokens(settings: Settings, verb: str, name: str | None, role: str | None) -> int:
    from fleet.tokens import Role, TokenError, TokenStore
    from jobs.store.db import Database

    db = Database(settings.database.url)
    tokens = TokenStore(db)
    try:
        if verb == "create" and name is not None and role is not None:
            try:
                info, token = await tokens.create(name, Role(role), datetime.now(UTC))
            except TokenError as exc:
                sys.stderr.write(f"fleet: {exc}\n")
                return 2
            sys.stdout.write(f"{token}\n")
            sys.stderr.write(f"token {info.name!r} ({info.role.value}) created; shown once\n")
            return 0
        if verb == "revoke" and name is not None:
            if await tokens.revoke(name) is None:
                sys.stderr.write(f"fleet: no token named {name!r}\n")
                return 2
            sys.stderr.write(f"token {name!r} revoked\n")
            return 0
        for info in await tokens.all():
            state = "revoked" if info.revoked else "active"
            sys.stdout.write(
                f"{info.name}\t{info.role.value}\t{state}\t{info.created_at:%Y-%m-%dT%H:%M:%SZ}\n"
            )
        return 0
    finally:
        await db.dispose()


def run_tokens(paths: Sequence[str], verb: str, name: str | None, role: str | None) -> int:
    """`fleet tokens create|list|revoke`: straight in the database (bootstrap needs no API)."""
    settings = _load(paths)
    if settings is None:
        return 2
    ensure_sqlite_dir(settings.database.url)
    upgrade(settings.database.url)
    return asyncio.run(_tokens(settings, verb, name, role))
