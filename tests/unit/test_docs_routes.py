"""docs/api.md's routes table says what the app serves: every route, with the role it needs."""

from __future__ import annotations

import re
from pathlib import Path

from fleet.api.routes import ROUTES
from fleet.cli.policy_runner import build_parser as runner_parser

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
ENTRY = re.compile(r"`(?:(GET|POST|PUT|PATCH|DELETE) )?(/[^`]*)`")


def _normal(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def documented_routes() -> dict[tuple[str, str], str]:
    """(method, path) -> role from the `| method and path | role | what |` table; a bare `/verb`
    after `POST /a/b` in the same cell is `POST /a/verb`."""
    text = DOC.read_text(encoding="utf-8")
    table = text.split("| method and path | role | what |", 1)[1].split("\n\n", 1)[0]
    out: dict[tuple[str, str], str] = {}
    for row in table.splitlines()[2:]:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        method, base = "", ""
        for verb, path in ENTRY.findall(cells[0]):
            if verb:
                method, base = verb, path
                out[(method, _normal(path))] = cells[1]
            else:
                out[(method, _normal(base.rsplit("/", 1)[0] + path))] = cells[1]
    return out


def test_every_route_is_documented_with_its_role() -> None:
    served = {
        (r.method, _normal(r.path)): "none" if r.role is None else r.role.value for r in ROUTES
    }
    assert documented_routes() == served


def test_the_policy_runner_help_names_a_command_that_exists() -> None:
    text = runner_parser().format_help()
    assert text.startswith("usage: python -m fleet.cli.policy_runner")
    assert "fleet serve` and `fleet worker` run the scheduler too" in text
