"""Whether the cloud's own record shows that a call happened: the rule for a send that may or may
not have reached the cloud (a timeout, a dropped connection, a crash while it was in flight).

A call that leaves no state behind (a reboot) is judged by the server's action history (Nova's
`os-instance-actions`, served by Huawei's native API for ECS and BMS servers alike): an action of
the call's kind that started at or after the send. Both times are the cloud's: the send is bounded
below by the latest `Date` the cloud answered before the sub-job was claimed
(`SubJobRecord.sent_after`), so neither this host's clock nor a cloud clock running at another
pace can move a record before or after it. Anything else done to the server in between (a tag
edited by a person, another operation) is not the call's evidence.

- `SEEN`: the record is there; the call happened (its end is read from the server).
- `NOT_SEEN`: the cloud keeps records and has none since the send: the call did not happen and
  may be sent again.
- `NO_EVIDENCE`: the cloud keeps no record (it does not serve the API), or the send's time is not
  known: the sub-job ends `unknown`, never sent twice and never called succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from fleet.drivers.base import InstanceAction

NO_RECORD = "the call may have acted; the cloud keeps no record"
NO_CLOCK = "the call may have acted; the cloud's clock before it was not read"


class Seen(StrEnum):
    SEEN = "seen"
    NOT_SEEN = "not_seen"
    NO_EVIDENCE = "no_evidence"


def judge(
    records: Sequence[InstanceAction] | None, recorded_as: str, sent_after: datetime | None
) -> tuple[Seen, str]:
    """The verdict on a send recorded as `recorded_as`, and why."""
    if records is None:
        return Seen.NO_EVIDENCE, NO_RECORD
    if sent_after is None:
        return Seen.NO_EVIDENCE, NO_CLOCK
    since = sent_after.isoformat()
    for record in records:
        if record.action == recorded_as and record.start_time >= sent_after:
            via = f" (request {record.request_id})" if record.request_id else ""
            return Seen.SEEN, f"{recorded_as} recorded by the cloud at {record.start_time}{via}"
    return Seen.NOT_SEEN, f"no {recorded_as} in the server's action history since {since}"
