"""Unknown sub-jobs through the REST API: `counts.unknown`, the `?state=unknown` filter, the
reason where a failure shows its message, and retry-failed's `include_unknown` (a 422 naming the
field when it is not a boolean)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from jobs.outcomes import Unknown
from jobs.ports import SubJobOutcomes
from jobs.records import Batch
from tests.api.conftest import Api
from tests.api.test_api_events import read_stream

REASON = "the call may have acted; the cloud keeps no record"


@contextlib.contextmanager
def no_evidence_for(api: Api, server_ids: set[str]) -> Iterator[None]:
    """The real executor acts on the cloud, then reports no evidence for these servers' first
    call (what a driver answers where the cloud keeps no record of a call that may have acted)."""
    dispatcher = api.fleet.runtime.dispatcher
    real = dispatcher.executor
    left = set(server_ids)

    class NoEvidence:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        async def submit(self, batch: Batch) -> SubJobOutcomes:
            out = dict(await real.submit(batch))
            for sub in batch.subjobs:
                if sub.payload.get("server_id") in left:
                    left.discard(str(sub.payload.get("server_id")))
                    out[sub.id] = Unknown()
            return out

    dispatcher.executor = NoEvidence()  # type: ignore[assignment]
    try:
        yield
    finally:
        dispatcher.executor = real


async def reboot_with_unknown(api: Api, n: int, unknown: int) -> tuple[str, list[str]]:
    """A reboot of `n` running ECS servers whose first `unknown` end unknown: (its id, the ids)."""
    servers = await api.servers("ecs-sim", status="running")
    ids = [str(s["id"]) for s in servers[:n]]
    with no_evidence_for(api, set(ids[:unknown])):
        created = await api.post(
            "/v1/operations",
            {"action": "reboot", "targets": {"endpoints": ["ecs-sim"], "ids": ids}},
        )
        assert created.status == 202, created.body
        final = await api.wait(str(created.body["id"]))
    return str(final["id"]), ids


async def test_unknown_sub_jobs_are_counted_listed_and_retried_only_when_asked(api: Api) -> None:
    op_id, ids = await reboot_with_unknown(api, 3, 1)
    op = (await api.get(f"/v1/operations/{op_id}")).body
    assert op["state"] == "completed_with_failures"
    counts = op["counts"]
    assert isinstance(counts, dict)
    assert (counts["unknown"], counts["succeeded"], counts["failed"]) == (1, 2, 0)
    assert op["progress"] == {"total": 3, "done": 3, "active": 0, "percent": 100.0}

    listed = await api.get(f"/v1/operations/{op_id}/subjobs", params={"state": "unknown"})
    assert listed.status == 200, listed.body
    [row] = listed.body["items"]  # type: ignore[misc]
    assert (row["server_id"], row["state"]) == (ids[0], "unknown")
    assert (row["error_code"], row["error_message"], row["reason"]) == (
        "engine.no_evidence",
        REASON,
        REASON,
    )

    events = await read_stream(api, f"/v1/operations/{op_id}/events")
    [told] = [e.data for e in events if e.event == "subjob"]
    assert (told["state"], told["code"], told["message"]) == (
        "unknown",
        "engine.no_evidence",
        REASON,
    )
    progress = [e.data for e in events if e.event == "progress"]
    assert progress[-1]["counts"]["unknown"] == 1

    plain = await api.post(f"/v1/operations/{op_id}/retry-failed")
    assert plain.status == 200, plain.body
    assert plain.body["requeued"] == 0
    assert plain.body["operation"]["counts"]["unknown"] == 1  # type: ignore[index]

    asked = await api.post(f"/v1/operations/{op_id}/retry-failed", {"include_unknown": True})
    assert asked.status == 200, asked.body
    assert asked.body["requeued"] == 1
    final = await api.wait(op_id)
    # sent again, as asked (the cloud keeps no record a read could find): now it has evidence
    assert final["state"] == "succeeded"
    assert final["counts"]["unknown"] == 0  # type: ignore[index]
    events = await api.fleet.operations.events(op_id)
    requeued = [e for e in events if e.event == "requeue"]
    assert [(e.from_state, e.to_state) for e in requeued] == [("unknown", "pending")]


@pytest.mark.parametrize("value", ["yes", 1, None, "true", [True]])
async def test_include_unknown_must_be_a_boolean(api: Api, value: object) -> None:
    op_id, _ = await reboot_with_unknown(api, 1, 0)
    reply = await api.post(f"/v1/operations/{op_id}/retry-failed", {"include_unknown": value})
    assert reply.status == 422, reply.body
    assert reply.content_type == "application/problem+json"
    assert reply.body["field"] == "include_unknown"


async def test_retry_failed_refuses_an_unknown_field(api: Api) -> None:
    op_id, _ = await reboot_with_unknown(api, 1, 0)
    reply = await api.post(f"/v1/operations/{op_id}/retry-failed", {"include_unkown": True})
    assert reply.status == 422, reply.body
    assert reply.body["field"] == "include_unkown"


async def test_state_filter_names_unknown_in_its_422(api: Api) -> None:
    op_id, _ = await reboot_with_unknown(api, 1, 0)
    reply = await api.get(f"/v1/operations/{op_id}/subjobs", params={"state": "unsure"})
    assert reply.status == 422, reply.body
    assert reply.body["field"] == "state"
    assert "unknown" in str(reply.body["detail"])
