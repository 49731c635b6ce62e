"""Shared test set-up: a tier marker on every test and a throwaway PostgreSQL cluster.

The cluster is started once per test session from the machine's PostgreSQL
binaries (`scripts/ensure-postgres.sh` installs them) and every test that asks
for `pg_url` gets a database of its own. In CI (``CI`` set) a missing server is
an error, never a skip: the PostgreSQL tests must run there.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["tests.simulator_fixtures"]

TIERS = ("unit", "contract", "integration", "simulator", "migration", "e2e")
# tests/api and tests/policies are named for an area, not a tier: a file listed here has that tier,
# any other test there is `integration` when it uses a database or the simulator (directly or
# through a fixture such as `api` or `env`), `unit` otherwise.
_FILE_TIERS = {
    ("api", "test_tokens_migration.py"): "migration",
    ("policies", "test_migration.py"): "migration",
    ("api", "test_fuzz_schemathesis.py"): "e2e",  # a whole `fleet serve` process
    ("policies", "test_two_processes.py"): "e2e",  # whole processes, SIGKILL
    ("policies", "test_simulator_e2e.py"): "integration",  # open_fleet in its own fixture
}
_AREAS = ("api", "policies")
_REAL_FIXTURES = frozenset(
    {"sqlite_url", "pg_url", "db_url", "postgres_cluster", "simulator", "simulator_factory"}
)


def tier_of(item: pytest.Item) -> str | None:
    """The tier a test belongs to: its directory's, or for an area directory, what it uses."""
    parts = Path(str(item.fspath)).parts
    for name in TIERS:
        if name in parts:
            return name
    area = next((a for a in _AREAS if a in parts), None)
    if area is None:
        return None
    listed = _FILE_TIERS.get((area, parts[-1]))
    if listed is not None:
        return listed
    used = set(getattr(item, "fixturenames", ()))
    return "integration" if used & _REAL_FIXTURES else "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))


@dataclass(frozen=True)
class PostgresCluster:
    bindir: Path
    host: str
    port: int
    user: str

    def url(self, database: str, driver: str = "asyncpg") -> str:
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        subprocess.run(
            [
                str(self.bindir / "createdb"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                name,
            ],
            check=True,
            capture_output=True,
        )
        return name


def _find_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    bindir = _find_bindir()
    if bindir is None:
        message = "PostgreSQL server binaries not found (run scripts/ensure-postgres.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    as_root = os.geteuid() == 0
    workdir = Path(tempfile.mkdtemp(prefix="fleet-pg-"))
    prefix: list[str] = []
    if as_root:
        shutil.chown(workdir, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = workdir / "data", _free_port()
    subprocess.run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    options = (
        f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(workdir / "log"),
            "-w",
            "-o",
            options,
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield PostgresCluster(bindir=bindir, host="127.0.0.1", port=port, user="postgres")
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_cluster: PostgresCluster) -> str:
    """An empty database of its own on the throwaway cluster (asyncpg URL)."""
    return postgres_cluster.url(postgres_cluster.create_database())


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Both databases: contract tests run the same assertions on each."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))
