"""Where a server's mark is kept: in its tags, or (on a dialect without a tag API) by fleet.

Mark-then-act must work on every dialect, but an OpenStack/EasyStack endpoint that advertises less
than microversion 2.26 has no tag API (its driver finds out from the version document). So for each endpoint a mark or clean-up policy looks at, the driver is asked whether it
could add the mark as a tag: `driver.check(Action.TAG_ADD, ...)` raises `Unsupported` when the
dialect declares no tag action (or its quirks say it has no tag API). That is the only test; the
policies never branch on a provider. Where the answer is no:

- a mark policy's fire keeps the mark itself (`policy_marks`, keyed by endpoint, server id and tag
  key) instead of adding a tag, and creates its `tag_add` operation only for the servers that keep
  tags;
- a clean-up policy reads the mark from fleet's table (over the server's own tags, which on such a
  dialect were set at creation), so the same rules decide what is due. It does so on every
  endpoint: an OpenStack endpoint found to serve the tag API later (fleet reads its version
  document at start-up) keeps the marks fleet kept for it before.

A preview says, per server, where its mark is kept: `"tag"` or `"fleet"`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from fleet.domain import Action, ActionParams
from fleet.drivers.errors import Unsupported
from fleet.policies.model import CleanupSpec, Policy

TAG = "tag"  # the mark is a tag on the server
FLEET = "fleet"  # the dialect keeps no tags: fleet keeps the mark (policy_marks)

SAMPLE_VALUE = "delete.2000-01-01"  # any well-formed mark: the check is about the dialect


class TagChecker(Protocol):
    def check(self, action: Action, params: ActionParams) -> None: ...


class MarkReader(Protocol):
    async def marks_on(self, endpoint: str) -> dict[str, dict[str, str]]: ...


def mark_tag(policy: Policy) -> str | None:
    """The tag key holding the policy's mark (mark and clean-up modes), else None."""
    if policy.spec.mode == "mark" and policy.spec.mark is not None:
        return policy.spec.mark.tag
    if policy.spec.mode == "cleanup":
        return (policy.spec.cleanup or CleanupSpec()).op_tag
    return None


def keeps_tags(driver: TagChecker, tag: str) -> bool:
    """Whether the endpoint can carry the mark as a tag (its driver's own declaration)."""
    try:
        driver.check(Action.TAG_ADD, ActionParams(tags={tag: SAMPLE_VALUE}))
    except Unsupported:
        return False
    return True


class MarkBook:
    """For one evaluation: per endpoint, where marks are kept and (for fleet) which marks."""

    def __init__(
        self, policy: Policy, inventory: Mapping[str, TagChecker], reader: MarkReader | None
    ) -> None:
        self._tag = mark_tag(policy)
        self._inventory = inventory
        self._reader = reader
        self._fleet: dict[str, dict[str, dict[str, str]] | None] = {}

    def where(self, endpoint: str) -> str | None:
        """ "tag", "fleet", or None when the policy has no mark."""
        if self._tag is None:
            return None
        return TAG if keeps_tags(self._inventory[endpoint], self._tag) else FLEET

    async def fleet_marks(self, endpoint: str, server_id: str) -> Mapping[str, str] | None:
        """The marks fleet keeps for the server (`{}` when none and its endpoint keeps no tags),
        or None when there are none and its endpoint keeps tags. Marks kept while an endpoint
        had no tag API (or before fleet found that it has one) still count once it keeps tags:
        a mark is never forgotten because the cloud gained an API."""
        if self._tag is None:
            return None
        if endpoint not in self._fleet:
            kept = None if self._reader is None else await self._reader.marks_on(endpoint)
            self._fleet[endpoint] = kept
        marks = (self._fleet[endpoint] or {}).get(server_id)
        if marks:
            return marks
        return {} if self.where(endpoint) == FLEET else None
