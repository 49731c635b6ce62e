"""Property-based fuzz of the whole API from its own OpenAPI document (schemathesis).

Every operation the document lists is called with generated input, valid and invalid, with an
admin token, against a live `fleet serve` process: no answer may be a 5xx, have an undocumented
status or media type, or violate its documented schema.

The strategies are driven by hand (`APIOperation.as_strategy` under `@given`) rather than with
`schemathesis.pytest.from_fixture`, whose pytest integration breaks on pytest 9.2 (it reads
`request.node._nodeid`); the document must come from a live process, so it cannot be loaded at
import time for `@schema.parametrize()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip(
    "schemathesis",
    reason="schemathesis is not installed: it is a test-only dependency "
    "(dev group in pyproject.toml)",
)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.live import Live, live_service  # noqa: E402

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 20  # per operation and mode
# One test walks every operation of the document, so its time grows with the routes (35 now);
# the default 120 s per test is for one behaviour, and a loaded machine crossed it.
FUZZ_TIMEOUT = 600


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    with live_service(workdir) as running:
        yield running


def _operations(live: Live) -> list[object]:
    headers = {"Authorization": f"Bearer {live.token}"}
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json", headers=headers)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.timeout(FUZZ_TIMEOUT)
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_api_answers_within_its_document(live: Live, mode: str) -> None:
    headers = {"Authorization": f"Bearer {live.token}"}
    operations = _operations(live)
    assert len(operations) >= 17
    tried: list[str] = []
    for operation in operations:
        strategy = operation.as_strategy(schemathesis.GenerationMode(mode))  # type: ignore[attr-defined]

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def check(case: object) -> None:
            case.call_and_validate(  # type: ignore[attr-defined]
                base_url=live.url, headers=headers, checks=CHECKS, timeout=60
            )

        try:
            check()
        except Unsatisfiable:
            # nothing to make invalid: an operation without parameters or body
            assert mode == "negative"
            continue
        tried.append(str(operation.label))  # type: ignore[attr-defined]
    assert "POST /v1/operations" in tried
    assert "GET /v1/servers" in tried
