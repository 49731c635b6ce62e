"""Records at the engine's edge: validation of a new operation, and how polls are grouped."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from jobs.errors import InvalidSpec
from jobs.loops.polling import poll_groups
from jobs.records import NewOperation, SubJobRecord
from jobs.states import State
from jobs.strategy import Strategy, parse_amount
from jobs.testing import subjob_record

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": ""}, "kind"),
        ({"kind": "x" * 65}, "kind"),
        ({"kind": "stop", "created_by": "t" * 201}, "created_by"),
        ({"kind": "stop", "idempotency_key": ""}, "idempotency_key"),
    ],
)
def test_a_new_operation_names_the_bad_field(fields: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        NewOperation(**fields)  # type: ignore[arg-type]
    assert info.value.field == field


def test_the_fingerprint_ignores_who_and_why_but_not_what() -> None:
    base = NewOperation(
        kind="stop", params={"type": "SOFT"}, created_by="a", reason="nightly", idempotency_key="k"
    )
    assert replace(base, created_by="b", reason="other").fingerprint() == base.fingerprint()
    assert replace(base, params={"type": "HARD"}).fingerprint() != base.fingerprint()
    waves = Strategy(waves=(parse_amount(1, "w", minimum=1),))
    assert replace(base, strategy=waves).fingerprint() != base.fingerprint()


def sub(i: int, job: str | None, **kw: object) -> SubJobRecord:
    times = {"not_before": NOW, "accepted_at": NOW, "created_at": NOW, "updated_at": NOW}
    fields = {"id": i, "seq": i, "target_id": f"s{i}", "state": State.AWAITING, **times}
    return subjob_record(**{**fields, "cloud_job_id": job, **kw})


def test_one_poll_per_cloud_job_and_status_reads_in_batches() -> None:
    rows = [
        sub(1, "j1"),
        sub(2, "j1"),
        sub(3, "j2"),
        *(sub(i, None) for i in range(4, 9)),
        sub(9, None, step=1),
        sub(10, None, operation_id="other"),
    ]
    groups = poll_groups(rows, lambda kind, key: 2)
    as_ids = sorted(tuple(s.id for s in g) for g in groups)
    assert as_ids == [(1, 2), (3,), (4, 5), (6, 7), (8,), (9,), (10,)]
