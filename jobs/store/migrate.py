"""Schema migrations as a function: `upgrade(url)` is what `fleet db upgrade` calls.

The Alembic scripts live in the repository's `migrations/` directory; a wheel carries them
inside the `jobs` package (`jobs/_migrations`, see pyproject.toml), where they are looked for first. `upgrade` is synchronous
(Alembic runs the async drivers on its own event loop); from async code call it in a thread:
``await asyncio.to_thread(upgrade, url)``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

_JOBS = Path(__file__).resolve().parents[1]
_INSTALLED, _SOURCE = _JOBS / "_migrations", _JOBS.parent / "migrations"
MIGRATIONS = _INSTALLED if (_INSTALLED / "env.py").is_file() else _SOURCE


def alembic_config(url: str) -> Config:
    """An Alembic config for `url`, without interpolating it (URLs may contain '%')."""
    if not (MIGRATIONS / "env.py").is_file():
        raise FileNotFoundError(f"Alembic scripts not found in {MIGRATIONS}")
    cfg = Config(str(MIGRATIONS / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    return cfg


def target_metadata(cfg: Config | None = None) -> list[sa.MetaData]:
    """The MetaData objects the schema is made of, named in alembic.ini (`target_metadata`):
    the engine's and the product's, so one migration history covers the whole database."""
    cfg = cfg or alembic_config("")
    names = (cfg.get_main_option("target_metadata") or "jobs.store.models:METADATA").split()
    found: list[sa.MetaData] = []
    for name in names:
        module, _, attr = name.partition(":")
        value = getattr(importlib.import_module(module), attr or "METADATA")
        if not isinstance(value, sa.MetaData):
            raise TypeError(f"{name} is not a sqlalchemy MetaData")
        found.append(value)
    return found


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` (sqlite+aiosqlite:// or postgresql+asyncpg://) to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
