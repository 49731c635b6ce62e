"""The policy tables (SQLAlchemy Core), kept identical to `migrations/versions/0003_policies.py`,
`0005_policy_marks.py` and `0013_schedules.py` by a test.

`policy_fires` is the truth about firing: one row per (policy, slot), enforced by a unique
constraint, so a second scheduler, a restart or a repeated manual run of the same slot cannot fire
it again. `policy_fire_servers` keeps, per stop fire, what its operation really stopped (restore
mode reads it, and it outlives the operation's own rows). `policy_marks` holds the marks of mark
policies on endpoints without a tag API (an EasyStack below 2.26): fleet keeps the mark itself, keyed
by (endpoint, server id, tag key), and clean-up policies read it there. `schedules` holds the
per-server schedules defined through the API (`fleet.policies.periods`; the ones in policy files
are not stored).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel.sql.sqltypes import UTCDateTime

POLICY_METADATA = sa.MetaData()
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only

POLICIES = sa.Table(
    "policies",
    POLICY_METADATA,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("active_since", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

POLICY_FIRES = sa.Table(
    "policy_fires",
    POLICY_METADATA,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("policy_id", sa.String(100), nullable=False),
    sa.Column("scheduled_at", UTCDateTime, nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("operation_id", sa.String(32), nullable=True),
    sa.Column("idempotency_key", sa.String(255), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("targets", sa.Integer, nullable=False),
    sa.Column("request", sa.JSON, nullable=True),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("worker", sa.String(200), nullable=False),
    sa.Column("by", sa.String(200), nullable=False),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("harvested_at", UTCDateTime, nullable=True),
    sa.Column("consumed_by", BigId, nullable=True),
    sa.UniqueConstraint("policy_id", "scheduled_at", name="uq_policy_fires_slot"),
    sa.Index("ix_policy_fires_status", "status"),
)

POLICY_FIRE_SERVERS = sa.Table(
    "policy_fire_servers",
    POLICY_METADATA,
    sa.Column(
        "fire_id",
        BigId,
        sa.ForeignKey("policy_fires.id", name="fk_policy_fire_servers_fire", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("endpoint", sa.String(100), primary_key=True),
    sa.Column("server_id", sa.String(255), primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("updated", sa.String(64), nullable=True),
)

POLICY_MARKS = sa.Table(
    "policy_marks",
    POLICY_METADATA,
    sa.Column("endpoint", sa.String(100), primary_key=True),
    sa.Column("server_id", sa.String(255), primary_key=True),
    sa.Column("tag", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
    sa.Column("policy_id", sa.String(100), nullable=False),
    sa.Column("fire_id", BigId, nullable=True),
    sa.Column("marked_at", UTCDateTime, nullable=False),
)

SCHEDULES = sa.Table(
    "schedules",
    POLICY_METADATA,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)
