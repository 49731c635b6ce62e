"""Webhooks (fleet.webhooks.tables): subscriptions with a reference to their signing secret, the
transactional outbox that is also the delivery log, and one row per delivery attempt.

Revision ID: 0010_webhooks
Revises: 0008_throttled_since
Create Date: 2026-12-07 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0010_webhooks'
down_revision: str | None = '0008_throttled_since'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table('webhooks',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('filter', sa.JSON(), nullable=False),
    sa.Column('secret_ref', sa.String(length=1024), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', Stamp(), nullable=False),
    sa.Column('updated_at', Stamp(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('webhook_outbox',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('subscription_id', sa.String(length=32), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('source', sa.String(length=255), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('time', Stamp(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', Stamp(), nullable=False),
    sa.Column('last_attempt_at', Stamp(), nullable=True),
    sa.Column('delivered_at', Stamp(), nullable=True),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('latency_ms', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', Stamp(), nullable=False),
    sa.ForeignKeyConstraint(['subscription_id'], ['webhooks.id'], name='fk_webhook_outbox_webhook', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_webhook_outbox_due', 'webhook_outbox', ['status', 'next_attempt_at'], unique=False)
    op.create_index('ix_webhook_outbox_subscription', 'webhook_outbox', ['subscription_id', 'status', 'id'], unique=False)
    op.create_table('webhook_attempts',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('delivery_id', BigId, nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('at', Stamp(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('latency_ms', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['delivery_id'], ['webhook_outbox.id'], name='fk_webhook_attempts_delivery', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_webhook_attempts_delivery', 'webhook_attempts', ['delivery_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_webhook_attempts_delivery', table_name='webhook_attempts')
    op.drop_table('webhook_attempts')
    op.drop_index('ix_webhook_outbox_subscription', table_name='webhook_outbox')
    op.drop_index('ix_webhook_outbox_due', table_name='webhook_outbox')
    op.drop_table('webhook_outbox')
    op.drop_table('webhooks')
