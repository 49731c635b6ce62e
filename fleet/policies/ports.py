"""What the policy package needs of the engine: creating operations and reading their results.

`jobs.operations.Operations` is the implementation; tests may pass a small fake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from fleet.engine.admission import ActRequest
from jobs.records import NewOperation, OperationView, Page, SubJobRecord
from jobs.states import State
from jobs.types import JSONObject


class OperationsPort(Protocol):
    async def create(self, new: NewOperation) -> tuple[OperationView, bool]: ...

    async def get(self, operation_id: str) -> OperationView: ...

    async def subjobs(
        self,
        operation_id: str,
        state: State | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[SubJobRecord]: ...


class Admitter(Protocol):
    """The one door (`fleet.engine.admission.Admission`): a request to act -> the operation to create,
    or `FieldError` naming the field."""

    async def admit(self, request: ActRequest) -> NewOperation: ...

    def targets(self, raw: Mapping[str, object]) -> JSONObject:
        """A selector checked on its own (FieldError: empty, unknown endpoint...)."""
        ...
