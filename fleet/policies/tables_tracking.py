"""The tables of what fleet's stops and starts came to (SQLAlchemy Core), kept identical to
`migrations/versions/0011_drift.py` by a test.

- `stop_spans`: one row per server an operation stopped (its stop sub-job succeeded): when, by
  which operation (and policy fire), at which flavor, and when and how it was started again.
  The savings report reads it.
- `drift_records`: one row per server that did not reach what an operation asked, or left it
  soon after (started by hand after a nightly stop), with what enforcing did about it.
- `tracking_state`: where the follower of finished operations has got to (its watermark).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel.sql.sqltypes import UTCDateTime

TRACKING_METADATA = sa.MetaData()
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only

STOP_SPANS = sa.Table(
    "stop_spans",
    TRACKING_METADATA,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("endpoint", sa.String(100), nullable=False),
    sa.Column("server_id", sa.String(255), nullable=False),
    sa.Column("flavor", sa.String(255), nullable=True),
    sa.Column("operation_id", sa.String(32), nullable=False),
    sa.Column("policy_id", sa.String(100), nullable=True),
    sa.Column("fire_id", BigId, nullable=True),
    sa.Column("stopped_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime, nullable=True),
    sa.Column("end_source", sa.String(16), nullable=True),
    sa.Column("end_detail", sa.Text, nullable=True),
    sa.Column("checked_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("operation_id", "endpoint", "server_id", name="uq_stop_spans_stop"),
    sa.Index("ix_stop_spans_server", "endpoint", "server_id"),
    sa.Index("ix_stop_spans_open", "ended_at"),
)

DRIFT_RECORDS = sa.Table(
    "drift_records",
    TRACKING_METADATA,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("endpoint", sa.String(100), nullable=False),
    sa.Column("server_id", sa.String(255), nullable=False),
    sa.Column("operation_id", sa.String(32), nullable=False),
    sa.Column("policy_id", sa.String(100), nullable=True),
    sa.Column("fire_id", BigId, nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("desired", sa.String(32), nullable=False),
    sa.Column("observed", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("changed_at", UTCDateTime, nullable=True),
    sa.Column("detected_at", UTCDateTime, nullable=False),
    sa.Column("enforcement", sa.String(16), nullable=True),
    sa.Column("enforce_operation_id", sa.String(32), nullable=True),
    sa.Column("enforce_reason", sa.Text, nullable=True),
    sa.Column("enforced_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint(
        "operation_id", "endpoint", "server_id", "kind", name="uq_drift_records_server"
    ),
    sa.Index("ix_drift_records_detected", "detected_at", "id"),
)

TRACKING_STATE = sa.Table(
    "tracking_state",
    TRACKING_METADATA,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("operation_id", sa.String(32), nullable=True),
    sa.Column("checked_at", UTCDateTime, nullable=True),
)
