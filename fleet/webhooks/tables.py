"""The webhook tables (SQLAlchemy Core), kept identical to `migrations/versions/0010_webhooks.py`
and `0016_outbox_txid.py` by a test.

`webhooks` holds the subscriptions: where to send, which events, a filter, and a REFERENCE to the
signing secret (`env:NAME` or `file:PATH`), never the secret. `webhook_outbox` is the transactional
outbox: one row per (subscription, event), written in the same transaction as the change it tells
of, delivered per subscription in the order of the writing transactions (`txid`, PostgreSQL's
transaction id; on SQLite, with one writer, the row id) and kept as the delivery log. `webhook_attempts` is one
row per HTTP attempt (status code, latency, error).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel.sql.sqltypes import UTCDateTime

WEBHOOK_METADATA = sa.MetaData()
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only

WEBHOOKS = sa.Table(
    "webhooks",
    WEBHOOK_METADATA,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("events", sa.JSON, nullable=False),
    sa.Column("filter", sa.JSON, nullable=False),
    sa.Column("secret_ref", sa.String(1024), nullable=False),
    sa.Column("description", sa.String(500), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)

WEBHOOK_OUTBOX = sa.Table(
    "webhook_outbox",
    WEBHOOK_METADATA,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "subscription_id",
        sa.String(32),
        sa.ForeignKey("webhooks.id", name="fk_webhook_outbox_webhook", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("time", UTCDateTime, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_attempt_at", UTCDateTime, nullable=True),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("txid", sa.BigInteger, nullable=True),  # 0016_outbox_txid: PostgreSQL only
    sa.Index("ix_webhook_outbox_due", "status", "next_attempt_at"),
    sa.Index("ix_webhook_outbox_subscription", "subscription_id", "status", "id"),
)

WEBHOOK_ATTEMPTS = sa.Table(
    "webhook_attempts",
    WEBHOOK_METADATA,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "delivery_id",
        BigId,
        sa.ForeignKey("webhook_outbox.id", name="fk_webhook_attempts_delivery", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_webhook_attempts_delivery", "delivery_id", "id"),
)
