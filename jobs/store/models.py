"""The engine's SQLModel tables: one schema for SQLite and PostgreSQL (see `migrations/`).

Only this module and `jobs.store` touch the ORM; everything else sees `jobs.records`. The store
speaks SQLAlchemy Core against the tables below (bulk inserts, compare-and-set updates), so the
classes exist for the schema and migrations rather than for sessions.

Indexes are chosen for the hot queries: a claim walks ``(operation_id, rate_key, state, seq)``;
wave checks, cancel and filtered paging use ``(operation_id, state, seq)``; polling and reaping
use ``(state, not_before)``. Per-state counts of an operation are a table of their own
(`subjob_counts`), kept in step with `subjobs` by the store. The state CHECK constraint is
generated from `jobs.states`.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel
from sqlmodel.sql.sqltypes import UTCDateTime

from jobs.states import check_sql

# JSON columns are annotated loosely: the store converts them to `jobs.types` values in records.
JSONCol = dict[str, object]
JSONList = list[object]

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only


def _fk_operation(table: str) -> sa.ForeignKey:
    return sa.ForeignKey("operations.id", name=f"fk_{table}_operation", ondelete="CASCADE")


class Operation(SQLModel, table=True):
    __tablename__ = "operations"
    __table_args__ = (
        sa.UniqueConstraint("idempotency_key", name="uq_operations_idempotency_key"),
        sa.Index("ix_operations_created", "created_at", "id"),
        sa.Index("ix_operations_finished", "finished_at"),
    )

    id: str = Field(sa_column=sa.Column(sa.String(32), primary_key=True))
    kind: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    params: JSONCol = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    selector: JSONCol = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    strategy: JSONCol = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    guard: JSONCol | None = Field(sa_column=sa.Column(sa.JSON(none_as_null=True), nullable=True))
    fingerprint: JSONCol = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    dry_run: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    reason: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created_by: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    idempotency_key: str | None = Field(sa_column=sa.Column(sa.String(255), nullable=True))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    planned_at: datetime | None = Field(sa_column=sa.Column(UTCDateTime, nullable=True))
    refused_reason: str | None = Field(sa_column=sa.Column(sa.Text, nullable=True))
    plan_attempts: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    plan_not_before: datetime | None = Field(sa_column=sa.Column(UTCDateTime, nullable=True))
    plan_owner: str | None = Field(sa_column=sa.Column(sa.String(200), nullable=True))
    plan_lease_expires_at: datetime | None = Field(sa_column=sa.Column(UTCDateTime, nullable=True))
    plan_error: str | None = Field(sa_column=sa.Column(sa.Text, nullable=True))
    targets: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    skipped: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    rate_keys: JSONList = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    summary: JSONCol | None = Field(sa_column=sa.Column(sa.JSON(none_as_null=True), nullable=True))
    current_wave: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    paused: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    cancel_requested: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    cancelled_by: str | None = Field(sa_column=sa.Column(sa.String(200), nullable=True))
    halted_reason: str | None = Field(sa_column=sa.Column(sa.Text, nullable=True))
    finished_at: datetime | None = Field(sa_column=sa.Column(UTCDateTime, nullable=True))
    # Approvals (`jobs.approval`): the rules given at creation; once planning found one that
    # holds, why, until when, and the decision (NULL: pending), by whom, when, with a note.
    approval_rules: JSONCol | None = Field(
        default=None, sa_column=sa.Column(sa.JSON(none_as_null=True), nullable=True)
    )
    approval_reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    approval_expires_at: datetime | None = Field(
        default=None, sa_column=sa.Column(UTCDateTime, nullable=True)
    )
    approval_decision: str | None = Field(
        default=None, sa_column=sa.Column(sa.String(16), nullable=True)
    )
    approval_by: str | None = Field(
        default=None, sa_column=sa.Column(sa.String(200), nullable=True)
    )
    approval_at: datetime | None = Field(
        default=None, sa_column=sa.Column(UTCDateTime, nullable=True)
    )
    approval_note: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))


BEGUN_SQL = "state = 'pending' AND (begun OR verify_first)"
"""A pending sub-job whose action has begun: a call of it was accepted by the cloud (it is at a
later step of its recipe, or retrying one), or one may have reached it (to be verified).
Written as text so that the queries and the partial index `ix_subjobs_begun` share one
expression (SQLite uses a partial index only for a query that repeats its terms)."""
BEGUN_INDEX = "ix_subjobs_begun"


class SubJob(SQLModel, table=True):
    __tablename__ = "subjobs"
    __table_args__ = (
        sa.CheckConstraint(check_sql("state"), name="ck_subjobs_state"),
        sa.UniqueConstraint("operation_id", "target_id", name="uq_subjobs_target"),
        sa.UniqueConstraint("operation_id", "seq", name="uq_subjobs_seq"),
        sa.Index("ix_subjobs_claim", "operation_id", "rate_key", "state", "seq"),
        sa.Index("ix_subjobs_state", "operation_id", "state", "seq"),
        sa.Index("ix_subjobs_due", "state", "not_before"),
        # the sub-jobs whose action has begun (`jobs.store.claims.begun`), few and counted often
        sa.Index(
            BEGUN_INDEX,
            "operation_id",
            sqlite_where=sa.text(BEGUN_SQL),
            postgresql_where=sa.text(BEGUN_SQL),
        ),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    operation_id: str = Field(
        sa_column=sa.Column(sa.String(32), _fk_operation("subjobs"), nullable=False)
    )
    seq: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    target_id: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    kind: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    rate_key: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    batch_key: str = Field(sa_column=sa.Column(sa.String(1024), nullable=False))
    payload: JSONCol = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    memo: JSONCol | None = Field(sa_column=sa.Column(sa.JSON(none_as_null=True), nullable=True))
    state: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    step: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    attempt: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    throttles: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    # when the current run of throttled answers began (the throttling deadline counts from it)
    throttled_since: datetime | None = Field(
        default=None, sa_column=sa.Column(UTCDateTime, nullable=True)
    )
    not_before: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    verify_first: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    # a call of its action was accepted by the cloud (a step not applying to the server, passed
    # over without a call, does not count): cancel, pause and the error budget let it finish
    begun: bool = Field(
        default=False,
        sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()),
    )
    cloud_job_id: str | None = Field(sa_column=sa.Column(sa.String(255), nullable=True))
    request_id: str | None = Field(sa_column=sa.Column(sa.String(255), nullable=True))
    accepted_at: datetime | None = Field(sa_column=sa.Column(UTCDateTime, nullable=True))
    error_code: str | None = Field(sa_column=sa.Column(sa.String(255), nullable=True))
    error_message: str | None = Field(sa_column=sa.Column(sa.Text, nullable=True))
    reason: str | None = Field(sa_column=sa.Column(sa.Text, nullable=True))
    lease_owner: str | None = Field(sa_column=sa.Column(sa.String(200), nullable=True))
    lease_expires_at: datetime | None = Field(sa_column=sa.Column(UTCDateTime, nullable=True))
    call_id: int | None = Field(sa_column=sa.Column(BigId, nullable=True))
    created_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    # the cloud's clock as last read before the claim of the current send (`ClaimRequest`)
    sent_after: datetime | None = Field(sa_column=sa.Column(UTCDateTime, nullable=True))


class CloudCall(SQLModel, table=True):
    """One cloud call the engine made (a submit or a verification), written before it is sent."""

    __tablename__ = "cloud_calls"
    __table_args__ = (sa.Index("ix_cloud_calls_operation", "operation_id", "id"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    operation_id: str = Field(
        sa_column=sa.Column(sa.String(32), _fk_operation("cloud_calls"), nullable=False)
    )
    purpose: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    kind: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    step: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    rate_key: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    batch_key: str = Field(sa_column=sa.Column(sa.String(1024), nullable=False))
    servers: JSONList = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    worker: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    started_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    finished_at: datetime | None = Field(sa_column=sa.Column(UTCDateTime, nullable=True))
    cloud_job_id: str | None = Field(sa_column=sa.Column(sa.String(255), nullable=True))
    request_id: str | None = Field(sa_column=sa.Column(sa.String(255), nullable=True))
    outcome: str | None = Field(sa_column=sa.Column(sa.String(32), nullable=True))
    error_code: str | None = Field(sa_column=sa.Column(sa.String(255), nullable=True))
    error_message: str | None = Field(sa_column=sa.Column(sa.Text, nullable=True))


class JobEvent(SQLModel, table=True):
    """Append-only history: every sub-job transition and every operation-level change."""

    __tablename__ = "events"
    __table_args__ = (sa.Index("ix_events_operation", "operation_id", "id"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    operation_id: str = Field(
        sa_column=sa.Column(sa.String(32), _fk_operation("events"), nullable=False)
    )
    subjob_id: int | None = Field(sa_column=sa.Column(BigId, nullable=True))
    target_id: str | None = Field(sa_column=sa.Column(sa.String(255), nullable=True))
    event: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    from_state: str | None = Field(sa_column=sa.Column(sa.String(16), nullable=True))
    to_state: str | None = Field(sa_column=sa.Column(sa.String(16), nullable=True))
    step: int | None = Field(sa_column=sa.Column(sa.Integer, nullable=True))
    attempt: int | None = Field(sa_column=sa.Column(sa.Integer, nullable=True))
    code: str | None = Field(sa_column=sa.Column(sa.String(255), nullable=True))
    message: str | None = Field(sa_column=sa.Column(sa.Text, nullable=True))
    worker: str | None = Field(sa_column=sa.Column(sa.String(200), nullable=True))
    call_id: int | None = Field(sa_column=sa.Column(BigId, nullable=True))
    at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))


class SubJobCount(SQLModel, table=True):
    """How many of an operation's sub-jobs are in each state, kept by the store in the same
    transaction as the rows it inserts, moves or deletes (`jobs.store.counts`): reading an
    operation's counts is a few rows, whatever its size."""

    __tablename__ = "subjob_counts"

    operation_id: str = Field(
        sa_column=sa.Column(
            sa.String(32), _fk_operation("subjob_counts"), primary_key=True, nullable=False
        )
    )
    state: str = Field(sa_column=sa.Column(sa.String(16), primary_key=True, nullable=False))
    n: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))


class Worker(SQLModel, table=True):
    """A running engine process (replica), kept alive by heartbeats."""

    __tablename__ = "workers"

    id: str = Field(sa_column=sa.Column(sa.String(200), primary_key=True))
    hostname: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    pid: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    started_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    heartbeat_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    expires_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    draining: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    # what the process understands (`jobs.store.leases.RELEASE`); NULL: a release before it
    release: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))


class Lease(SQLModel, table=True):
    """A named lease with failover (a rate key's dispatching, the scheduler's leadership)."""

    __tablename__ = "leases"

    name: str = Field(sa_column=sa.Column(sa.String(255), primary_key=True))
    owner: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    acquired_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    expires_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))


class RateGrant(SQLModel, table=True):
    """One call let through a shared budget (PostgreSQL, several replicas): it counts while in
    flight (`ended_at` NULL) and for a period after `ended_at` (its answer, or its grant when it
    was not followed to its answer), for every replica (see `jobs.sharedlimit`)."""

    __tablename__ = "rate_grants"
    __table_args__ = (sa.Index("ix_rate_grants_key", "rate_key", "ended_at"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    rate_key: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    worker: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    requests: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    servers: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    answered: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    granted_at: datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    ended_at: datetime | None = Field(sa_column=sa.Column(UTCDateTime, nullable=True))


METADATA = SQLModel.metadata
OPERATIONS = METADATA.tables["operations"]
SUBJOBS = METADATA.tables["subjobs"]
CLOUD_CALLS = METADATA.tables["cloud_calls"]
EVENTS = METADATA.tables["events"]
WORKERS = METADATA.tables["workers"]
LEASES = METADATA.tables["leases"]
RATE_GRANTS = METADATA.tables["rate_grants"]
COUNTS = METADATA.tables["subjob_counts"]
