"""Scheduled policies (fleet.policies.tables): policies, one row per fired or skipped slot
(unique per policy and slot: the exactly-once rule), and what each stop fire really stopped.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('policies',
    sa.Column('id', sa.String(length=100), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('active_since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('policy_fires',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('policy_id', sa.String(length=100), nullable=False),
    sa.Column('scheduled_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('operation_id', sa.String(length=32), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('targets', sa.Integer(), nullable=False),
    sa.Column('request', sa.JSON(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('worker', sa.String(length=200), nullable=False),
    sa.Column('by', sa.String(length=200), nullable=False),
    sa.Column('claimed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('harvested_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('consumed_by', BigId, nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('policy_id', 'scheduled_at', name='uq_policy_fires_slot')
    )
    with op.batch_alter_table('policy_fires', schema=None) as batch_op:
        batch_op.create_index('ix_policy_fires_status', ['status'], unique=False)

    op.create_table('policy_fire_servers',
    sa.Column('fire_id', BigId, nullable=False),
    sa.Column('endpoint', sa.String(length=100), nullable=False),
    sa.Column('server_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('updated', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['fire_id'], ['policy_fires.id'], name='fk_policy_fire_servers_fire', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('fire_id', 'endpoint', 'server_id')
    )


def downgrade() -> None:
    op.drop_table('policy_fire_servers')
    with op.batch_alter_table('policy_fires', schema=None) as batch_op:
        batch_op.drop_index('ix_policy_fires_status')

    op.drop_table('policy_fires')
    op.drop_table('policies')
