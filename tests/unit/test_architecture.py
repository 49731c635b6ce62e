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


# What names a provider or a dialect in code: a member of `Provider` or of the drivers' `Flavour`,
# or a string that is one of their values. Only the driver packages (and their settings classes),
# the simulator and the enum's own definition may.
_PROVIDER_WORDS = {"huawei", "huawei-ecs", "huawei-bms", "openstack", "easystack", "nova"}
_MAY_NAME_PROVIDERS = ("fleet/drivers/", "fleet/simulator/")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            ids.add(id(first.value))
    return ids


def _names_a_provider(path: Path) -> list[str]:
    """`line: what` for each place that names a provider (docstrings and comments do not count)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    enum_body: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Provider":
            enum_body.update(id(n) for n in ast.walk(node))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in enum_body:
            continue
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("Provider", "Flavour")
            and node.attr.isupper()
        ):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docs
            and node.value.lower() in _PROVIDER_WORDS
        ):
            found.append((node.lineno, repr(node.value)))
    return [f"{line}: {what}" for line, what in sorted(found)]


def test_nothing_outside_the_driver_packages_names_a_provider() -> None:
    """Adding a provider is a driver package, a settings class and a simulator dialect: no other
    module branches on (or defaults to) one."""
    offenders = {}
    for path in sorted([*(ROOT / "fleet").rglob("*.py"), *(ROOT / "jobs").rglob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(_MAY_NAME_PROVIDERS):
            continue
        if found := _names_a_provider(path):
            offenders[rel] = found
    assert offenders == {}


def test_the_provider_rule_catches_a_branch(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text(
        '"""Huawei or openstack."""\n'
        "def f(spec, sim):\n"
        '    """openstack"""\n'
        "    if spec.provider is Provider.OPENSTACK:\n"
        '        return sim["openstack"]\n'
        '    return sim["huawei"]  # else: Huawei\n',
        encoding="utf-8",
    )
    assert _names_a_provider(sample) == ["4: Provider.OPENSTACK", "5: 'openstack'", "6: 'huawei'"]
