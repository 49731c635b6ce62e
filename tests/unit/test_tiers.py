"""Every collected test has exactly one tier marker (unit, contract, integration, simulator,
migration, e2e), so `-m TIER` selects every test of a tier and no test escapes all of them.

It checks the tests of the run it is part of: the whole suite under `make test`.
"""

from __future__ import annotations

import pytest

from tests.conftest import TIERS


def test_every_collected_test_has_exactly_one_tier(request: pytest.FixtureRequest) -> None:
    items: list[pytest.Item] = request.session.items
    wrong = {
        item.nodeid: tiers
        for item in items
        if len(tiers := sorted({m.name for m in item.iter_markers() if m.name in TIERS})) != 1
    }
    assert not wrong, f"{len(wrong)} tests without exactly one tier: {list(wrong.items())[:5]}"
