"""Budgets shared by the replicas of one PostgreSQL database: each call let through a limited
rate key is a row (`rate_grants`), counted by every replica while in flight and for a period
after its answer.

Revision ID: 0014_rate_leases
Revises: 0008_throttled_since
Create Date: 2026-12-09 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0014_rate_leases'
down_revision: str | None = '0013_schedules'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('rate_grants',
    sa.Column('id', BigId, nullable=False),
    sa.Column('rate_key', sa.String(length=255), nullable=False),
    sa.Column('worker', sa.String(length=200), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('servers', sa.Integer(), nullable=False),
    sa.Column('answered', sa.Boolean(), nullable=False),
    sa.Column('granted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('ended_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rate_grants', schema=None) as batch_op:
        batch_op.create_index('ix_rate_grants_key', ['rate_key', 'ended_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rate_grants', schema=None) as batch_op:
        batch_op.drop_index('ix_rate_grants_key')
    op.drop_table('rate_grants')
