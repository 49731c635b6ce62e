"""What fleet's stops and starts came to (fleet.policies.tables_tracking): the spans servers
stayed stopped (the savings report), drift records, and the follower's watermark.

Revision ID: 0011_drift
Revises: 0008_throttled_since
Create Date: 2026-12-09 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0011_drift'
down_revision: str | None = '0010_webhooks'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table('stop_spans',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('endpoint', sa.String(length=100), nullable=False),
    sa.Column('server_id', sa.String(length=255), nullable=False),
    sa.Column('flavor', sa.String(length=255), nullable=True),
    sa.Column('operation_id', sa.String(length=32), nullable=False),
    sa.Column('policy_id', sa.String(length=100), nullable=True),
    sa.Column('fire_id', BigId, nullable=True),
    sa.Column('stopped_at', Stamp(), nullable=False),
    sa.Column('ended_at', Stamp(), nullable=True),
    sa.Column('end_source', sa.String(length=16), nullable=True),
    sa.Column('end_detail', sa.Text(), nullable=True),
    sa.Column('checked_at', Stamp(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('operation_id', 'endpoint', 'server_id', name='uq_stop_spans_stop')
    )
    op.create_index('ix_stop_spans_server', 'stop_spans', ['endpoint', 'server_id'])
    op.create_index('ix_stop_spans_open', 'stop_spans', ['ended_at'])
    op.create_table('drift_records',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('endpoint', sa.String(length=100), nullable=False),
    sa.Column('server_id', sa.String(length=255), nullable=False),
    sa.Column('operation_id', sa.String(length=32), nullable=False),
    sa.Column('policy_id', sa.String(length=100), nullable=True),
    sa.Column('fire_id', BigId, nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('desired', sa.String(length=32), nullable=False),
    sa.Column('observed', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('changed_at', Stamp(), nullable=True),
    sa.Column('detected_at', Stamp(), nullable=False),
    sa.Column('enforcement', sa.String(length=16), nullable=True),
    sa.Column('enforce_operation_id', sa.String(length=32), nullable=True),
    sa.Column('enforce_reason', sa.Text(), nullable=True),
    sa.Column('enforced_at', Stamp(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint(
        'operation_id', 'endpoint', 'server_id', 'kind', name='uq_drift_records_server'
    )
    )
    op.create_index('ix_drift_records_detected', 'drift_records', ['detected_at', 'id'])
    op.create_table('tracking_state',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('finished_at', Stamp(), nullable=True),
    sa.Column('operation_id', sa.String(length=32), nullable=True),
    sa.Column('checked_at', Stamp(), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('tracking_state')
    op.drop_index('ix_drift_records_detected', table_name='drift_records')
    op.drop_table('drift_records')
    op.drop_index('ix_stop_spans_open', table_name='stop_spans')
    op.drop_index('ix_stop_spans_server', table_name='stop_spans')
    op.drop_table('stop_spans')
