"""Import rules that import-linter cannot express: the simulator uses only stdlib + aiohttp."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# aiohttp's own building blocks are part of "aiohttp" for this rule.
ALLOWED_THIRD_PARTY = {"aiohttp", "yarl", "multidict"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_simulator_imports_only_stdlib_aiohttp_and_itself() -> None:
    files = sorted((ROOT / "fleet" / "simulator").rglob("*.py"))
    assert files, "the simulator package is missing"
    offenders = {}
    for path in files:
        bad = {
            name
            for name in _imports(path)
            if not name.startswith("fleet.simulator")
            and name.split(".")[0] not in sys.stdlib_module_names
            and name.split(".")[0] not in ALLOWED_THIRD_PARTY
            and name != "__future__"
        }
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_the_rule_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("from fleet.drivers import base\nimport json\n", encoding="utf-8")
    assert _imports(sample) == {"fleet.drivers", "json"}
