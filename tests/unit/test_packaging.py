"""What a built wheel carries: installed from it (not from this checkout), `fleet db upgrade`
finds its migrations and the documented defaults inside the packages."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import fleet.settings, jobs.store.migrate
from fleet.cli import main
code = main(["db", "upgrade"])
print(json.dumps({"code": code, "migrations": str(jobs.store.migrate.MIGRATIONS),
                  "defaults": str(fleet.settings.DEFAULT_CONFIG),
                  "url": fleet.settings.load_with_defaults().database.url}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = "import sys; from hatchling.build import build_wheel; print(build_wheel(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", build, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out / done.stdout.strip().splitlines()[-1]


def test_wheel_carries_the_migrations_and_the_defaults(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    scripts = {p.relative_to(ROOT / "migrations").as_posix() for p in ROOT.glob("migrations/**/*")}
    expected = {f"jobs/_migrations/{s}" for s in scripts if s.endswith((".py", ".ini", ".mako"))}
    assert expected <= names
    assert "fleet/_config/default.toml" in names
    assert not any("__pycache__" in n for n in names)


def test_wheel_carries_the_console(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    static = {f"fleet/api/static/{p.name}" for p in (ROOT / "fleet/api/static").iterdir()}
    assert {"fleet/api/static/index.html", "fleet/api/static/app.js"} <= static <= names


def test_db_upgrade_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env["PYTHONPATH"] = str(site)  # ahead of this checkout (an editable install in the venv)
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["code"] == 0
    assert Path(got["migrations"]) == site / "jobs" / "_migrations"
    assert Path(got["defaults"]) == site / "fleet" / "_config" / "default.toml"
    # the shipped defaults' database, relative to where the command ran
    assert got["url"] == "sqlite+aiosqlite:///var/fleet.db"
    with sqlite3.connect(work / "var" / "fleet.db") as db:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
        (version,) = db.execute("select version_num from alembic_version").fetchone()
    assert {"operations", "subjobs", "cloud_calls", "events", "workers", "leases"} <= tables
    heads = sorted(p.stem.split("_")[0] for p in (ROOT / "migrations" / "versions").glob("0*.py"))
    assert version.startswith(heads[-1])
