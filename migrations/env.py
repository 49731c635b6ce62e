"""Alembic environment: one schema for SQLite and PostgreSQL, async drivers welcome.

The database URL comes from `config.attributes["url"]` (set by `jobs.store.migrate`), from
``-x url=...`` on the command line, or from ``sqlalchemy.url``. Async URLs
(``sqlite+aiosqlite``, ``postgresql+asyncpg``) run through an async engine; a caller may also hand
over an open connection in ``config.attributes["connection"]``. ``render_as_batch`` keeps ALTERs
working on SQLite.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from jobs.store.migrate import target_metadata as schema_metadata

config = context.config
target_metadata = schema_metadata(config)
ASYNC_DRIVERS = {"aiosqlite", "asyncpg", "psycopg_async"}


def _url() -> str:
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database URL: pass -x url=... or use jobs.store.migrate.upgrade(url)")
    return str(url)


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
        return
    url = _url()
    if make_url(url).get_driver_name() in ASYNC_DRIVERS:
        asyncio.run(run_async_migrations(url))
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            do_run_migrations(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
