"""Each package says what it is for and what it exposes; `jobs` serves its names lazily."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import jobs

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(
    ".".join(path.parent.relative_to(ROOT).parts)
    for top in ("jobs", "fleet")
    for path in (ROOT / top).rglob("__init__.py")
)


def test_the_packages_are_found() -> None:
    assert {"jobs", "jobs.store", "jobs.loops", "fleet.cli", "fleet.engine"} <= set(PACKAGES)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_package_says_what_it_is_for_and_exposes_all(name: str) -> None:
    package = importlib.import_module(name)
    assert package.__doc__ and len(package.__doc__.split()) >= 8, f"{name}: no docstring"
    exported = package.__all__
    assert isinstance(exported, list)
    assert len(set(exported)) == len(exported)
    for attr in exported:  # a name, or one of the package's public modules
        found = getattr(package, attr, None) or importlib.import_module(f"{name}.{attr}")
        assert found is not None, f"{name}.{attr}"


def test_jobs_serves_each_name_from_its_defining_module() -> None:
    for name in jobs.__all__:
        module = jobs._MODULE_OF[name]
        assert getattr(jobs, name) is getattr(importlib.import_module(module), name)
    assert set(jobs._MODULE_OF) == set(jobs.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = jobs.nothing  # type: ignore[attr-defined]


def test_jobs_names_for_the_type_checker_are_the_names_served() -> None:
    tree = ast.parse((ROOT / "jobs" / "__init__.py").read_text(encoding="utf-8"))
    guarded = next(node for node in tree.body if isinstance(node, ast.If))
    imported = {
        (node.module, alias.name)
        for node in ast.walk(guarded)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported == {(module, name) for name, module in jobs._MODULE_OF.items()}


def test_a_light_engine_module_does_not_load_the_database_layer() -> None:
    code = (
        "import sys, jobs.errors, jobs.strategy, jobs.types\n"
        "print(sorted(m for m in sys.modules if m.startswith(('sqlalchemy', 'sqlmodel', 'alembic'))"
        " or m.startswith('jobs.store')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
