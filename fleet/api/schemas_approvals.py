"""The approval parts of the operations contract (see `jobs.approval`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ApprovalOut(BaseModel):
    """Why the operation waits (or waited) for another token's approval, and the decision."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: Literal["pending", "approved", "rejected", "expired"]
    reason: str = Field(description="the rules that hold for its plan")
    requested_at: datetime | None = Field(description="when it started to wait (planned)")
    expires_at: datetime = Field(description="without a decision by then it expires")
    decided_by: str | None = Field(description="the token that approved or rejected it")
    decided_at: datetime | None
    note: str | None = Field(description="what the decider wrote")


class DecisionIn(BaseModel):
    """An approval or a rejection, with an optional note (recorded with who and when)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    note: str | None = Field(default=None, max_length=1000)
