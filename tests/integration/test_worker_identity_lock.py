"""A worker's name is held by one live holder at a time, on SQLite (a file lock next to the
database) and PostgreSQL (a session advisory lock); released, it can be taken again at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.store.identity import WorkerNameTaken, lock_path, worker_identity


async def test_a_held_name_is_refused_and_free_again_once_released(db_url: str) -> None:
    async with worker_identity(db_url, "api-1"):
        with pytest.raises(WorkerNameTaken, match="worker 'api-1' is already running"):
            async with worker_identity(db_url, "api-1"):
                pass
        async with worker_identity(db_url, "api-2"):  # another name is another lock
            pass
    async with worker_identity(db_url, "api-1"):  # released with its holder
        pass


async def test_the_sqlite_lock_file_sits_next_to_the_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}"
    async with worker_identity(url, "host:8080"):
        path = lock_path(str(tmp_path / "fleet.db"), "host:8080")
        assert path.parent == tmp_path and path.name.startswith("fleet.db.worker-host_8080-")
        assert path.read_text().splitlines()[0] == "host:8080"
    # names that differ only in characters a file name cannot hold get files of their own
    assert lock_path("db", "a:b") != lock_path("db", "a_b")


async def test_an_in_memory_database_needs_no_lock() -> None:
    async with (
        worker_identity("sqlite+aiosqlite://", "w"),
        worker_identity("sqlite+aiosqlite://", "w"),
    ):
        pass
